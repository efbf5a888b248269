"""Third-party plugins are discovered through real entry-point metadata, and their failures are isolated.

Nothing is installed into the project's environment: each plugin lives in a temporary folder
(installed there by pip with ``--target``, or written by hand with a ``.dist-info``) that is put
on ``PYTHONPATH`` of an ``imgtrans`` subprocess, so discovery goes through
``importlib.metadata`` exactly as it does for a plugin installed from PyPI.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgtrans.core.checkpoint import read_metadata
from imgtrans.testing.samples import write_aligned

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_DIR = ROOT / "docs" / "examples" / "imgtrans-example-plugin"

pytestmark = pytest.mark.slow


# helpers ----------------------------------------------------------------------------------------
def start_cli(args: list[str], plugin_dirs: list[Path], home: Path) -> subprocess.Popen[str]:
    """``python -m imgtrans ARGS`` started with ``plugin_dirs`` first on PYTHONPATH and a private
    IMGTRANS_HOME; commands that do not depend on each other run side by side (each spends seconds
    importing on one core)."""
    env = dict(os.environ)
    env.pop("IMGTRANS_DISABLE_PLUGINS", None)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, plugin_dirs), *filter(None, [env.get("PYTHONPATH")])])
    env["IMGTRANS_HOME"] = str(home)
    env["COLUMNS"] = "200"  # rich tables: never wrap or elide names
    # cwd outside the repository, so the checkout's own files (imgtrans.egg-info) are not on sys.path
    return subprocess.Popen([sys.executable, "-m", "imgtrans", *args], env=env, cwd=home.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_cli(proc: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run_cli(args: list[str], plugin_dirs: list[Path], home: Path) -> subprocess.CompletedProcess[str]:
    """``python -m imgtrans ARGS`` as :func:`start_cli` starts it, waited for."""
    return wait_cli(start_cli(args, plugin_dirs, home))


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def plugins_json(plugin_dirs: list[Path], home: Path) -> dict[str, dict]:
    """``imgtrans plugins --json``, whose exit status is 1 exactly when some plugin failed."""
    result = run_cli(["plugins", "--json"], plugin_dirs, home)
    found = {p["name"]: p for p in json.loads(result.stdout)}
    failed = any(p["error"] for p in found.values())
    assert result.returncode == (1 if failed else 0), result.stderr
    return found


def write_dist(target: Path, dist: str, entry_point: str, module: str, source: str) -> Path:
    """A hand-made installed distribution: ``<dist>-0.0.1.dist-info`` (METADATA, entry_points.txt) and a module.

    The folder name must use the normalised (underscored) name, as wheels do: importlib.metadata
    takes the distribution name from the part before the first ``-``.
    """
    info = target / f"{dist.replace('-', '_')}-0.0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text(f"[imgtrans]\n{entry_point} = {module}\n")
    (target / module).mkdir()
    (target / module / "__init__.py").write_text(textwrap.dedent(source))
    return target


# the example plugin, installed by pip -------------------------------------------------------------
@pytest.fixture(scope="module")
def example_site(tmp_path_factory) -> Path:
    """The example plugin installed once, offline, into a private ``--target`` folder."""
    base = tmp_path_factory.mktemp("example")
    # build from a copy: setuptools writes build/ and *.egg-info next to the sources
    source = shutil.copytree(EXAMPLE_DIR, base / "src",
                             ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = base / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                    "--no-cache-dir", "--disable-pip-version-check", "--quiet", "--target", str(target), str(source)],
                   check=True)
    assert list(target.glob("imgtrans_example_plugin-0.1.0.dist-info"))
    return target


def test_example_plugin_is_discovered_and_trains(example_site, tmp_path):
    home = tmp_path / "home"
    write_aligned(tmp_path / "data", size=64)  # a tiny aligned dataset: A on the left half, B on the right
    run = tmp_path / "run"
    training = start_cli(["train", "pix2pix", "--data", str(tmp_path / "data"), "--generator", "example_tiny",
                          "--set", "discriminator.ndf=8", "--load-size", "64", "--crop-size", "64",
                          "--max-steps", "2", "--out", str(run), "--quiet"], [example_site], home)
    made = tmp_path / "made"  # the plugin's pair maker serves `data make` like a built-in one
    making = start_cli(["data", "make", "example_posterize", str(tmp_path / "data"), str(made), "--size", "32",
                        "--set", "example_posterize.bits=1"], [example_site], home)

    listed = ok(run_cli(["list", "generator", "example*"], [example_site], home))
    assert "example_tiny" in listed.stdout
    assert "unet" not in listed.stdout  # the pattern filters

    plugins = plugins_json([example_site], home)
    assert plugins["example"]["distribution"] == "imgtrans-example-plugin"
    assert plugins["example"]["version"] == "0.1.0"
    assert plugins["example"]["hooks"] == ["register_commands", "register_components", "register_datasets",
                                           "register_zoo"]
    assert plugins["example"]["error"] is None
    assert plugins["pix2pix"]["error"] is None

    ok(wait_cli(training))
    model = run / "model.safetensors"
    assert model.is_file()
    assert read_metadata(model)["generator"]["name"] == "example_tiny"

    ok(wait_cli(making))
    assert json.loads((made / "make.json").read_text())["parameters"] == {"bits": 1}
    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(image)
    out = tmp_path / "out.png"
    ok(run_cli(["translate", "--model", str(model), str(image), str(out)], [example_site], home))
    with Image.open(out) as translated:
        assert translated.size == (56, 40)


def test_example_recipe_trains_from_the_command_line(example_site, tmp_path):
    """A third party's recipe (one generator, L1 only) goes through the same contract as pix2pix."""
    home = tmp_path / "home"
    write_aligned(tmp_path / "data", size=32)
    run = tmp_path / "run"
    training = start_cli(["train", "example_l1", "--data", str(tmp_path / "data"), "--lambda", "2", "--load-size",
                          "32", "--crop-size", "32", "--max-steps", "2", "--out", str(run), "--quiet"],
                         [example_site], home)
    help_text = ok(run_cli(["train", "example_l1", "--help"], [example_site], home)).stdout
    assert "--lambda" in help_text and "--lambda-l1" not in help_text
    ok(wait_cli(training))
    meta = read_metadata(run / "model.safetensors")
    assert meta["recipe"] == "example_l1" and meta["networks"] == ["generator"]
    assert meta["config"]["recipe"]["weight"] == 2.0
    out = tmp_path / "out.png"
    ok(run_cli(["translate", "--model", str(run / "model.safetensors"), str(tmp_path / "data" / "train" / "pair_00.png"), str(out)],
               [example_site], home))


def test_example_plugin_passes_its_own_conformance_suite(example_site, tmp_path):
    """The example's tests/ (a few lines using imgtrans.testing) run against the installed plugin,
    as its author would run them: every one of its registrations passes the conformance kit."""
    home = tmp_path / "home"
    env = dict(os.environ)
    env.pop("IMGTRANS_DISABLE_PLUGINS", None)
    env["PYTHONPATH"] = os.pathsep.join([str(example_site), *filter(None, [env.get("PYTHONPATH")])])
    env["IMGTRANS_HOME"] = str(home)
    tests = example_site.parent / "src" / "tests"  # the copy example_site was installed from
    # cwd outside the sources: the plugin is imported from where pip installed it
    result = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", str(tests)],
                            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    cases = ("generator:example_tiny", "discriminator:example_patch", "loss:example_charbonnier",
             "loss:example_feature_l1", "dataset_format:a_above_b", "recipe:example_l1", "dataset:example_stripes", "zoo:example_invert",
             "command:example-stripes", "metric:example_max_error", "pair_maker:example_posterize")
    for case in cases:
        assert f"test_conformance[{case}] PASSED" in result.stdout, result.stdout[-4000:]
    assert "test_registers_one_of_each_kind PASSED" in result.stdout


# failures stay contained ------------------------------------------------------------------------
def test_broken_plugin_is_reported_and_skipped(tmp_path):
    home = tmp_path / "home"
    site = write_dist(tmp_path / "site", "imgtrans-broken-plugin", "broken", "imgtrans_broken",
                      'raise RuntimeError("boom")\n')

    listed = ok(run_cli(["list", "generator"], [site], home))
    assert "unet_256" in listed.stdout
    warning = [line for line in listed.stderr.splitlines() if "warning" in line]
    assert len(warning) == 1 and "'broken'" in warning[0] and "boom" in warning[0], listed.stderr

    plugins = plugins_json([site], home)
    assert plugins["broken"]["distribution"] == "imgtrans-broken-plugin"
    assert "boom" in plugins["broken"]["error"]
    assert plugins["pix2pix"]["error"] is None


@pytest.mark.parametrize("source, error", [
    ("import sys\nprint('hello from a plugin')\nsys.exit(3)\n", "SystemExit: 3"),
    ("raise KeyboardInterrupt\n", "KeyboardInterrupt"),
    ("from imgtrans import hookimpl\n\n@hookimpl\ndef register_components(registry):\n"
     "    print('registering')\n    raise SystemExit(4)\n", "SystemExit: 4"),
])
def test_a_plugin_that_exits_or_prints_fails_alone(tmp_path, source: str, error: str) -> None:
    """sys.exit() at import or in a hook made every command exit 3 and print nothing; a print at import
    corrupted `list --json`.  Now they are that plugin's failure, and stdout stays the command's."""
    home = tmp_path / "home"
    site = write_dist(tmp_path / "site", "imgtrans-exiting-plugin", "exiting", "imgtrans_exiting", source)
    listed = ok(run_cli(["list", "generator", "--json"], [site], home))
    assert "unet_256" in json.dumps(json.loads(listed.stdout))  # stdout is JSON, whatever the plugin printed
    plugins = plugins_json([site], home)
    assert error in plugins["exiting"]["error"] and plugins["pix2pix"]["error"] is None


CLASH = '''
from torch import nn

from imgtrans import hookimpl


@hookimpl
def register_components(registry):
    registry.generator("{name}_identity", nn.Identity)
    registry.generator("unet_256", nn.Identity)  # already taken by pix2pix
'''


@pytest.mark.parametrize("name", ["clash"])  # sorts before 'pix2pix': bundled plugins still win
def test_clashing_name_is_rejected(tmp_path, name):
    home = tmp_path / "home"
    site = write_dist(tmp_path / "site", f"imgtrans-{name.replace('_', '-')}-plugin", name, f"imgtrans_{name}",
                      CLASH.format(name=name))

    plugins = plugins_json([site], home)
    assert plugins["pix2pix"]["error"] is None
    error = plugins[name]["error"]
    assert error and "unet_256" in error and "'pix2pix'" in error and f"'{name}'" in error

    rows = json.loads(ok(run_cli(["list", "generator", "--json"], [site], home)).stdout)
    owners = {r["name"]: r["plugin"] for r in rows}
    assert owners["unet_256"] == "pix2pix"
    # the rejection is atomic: the clashing plugin's other name is not registered either
    assert f"{name}_identity" not in owners
