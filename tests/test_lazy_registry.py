"""Start-up (issue 16, item 5): listing and describing components imports no torch.

Components registered as ``"module:attribute"`` are imported on first use; their descriptions and
``info`` tables are read from the source (imgtrans.core.source_info), which must agree with what the
imported factory says.  The eager form (a callable) keeps working for third parties.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import imgtrans
from imgtrans.core.hookspecs import hookimpl
from imgtrans.core.introspect import arguments
from imgtrans.core.plugin_host import PluginHost, PluginInfo
from imgtrans.core.registry import KINDS, Component, first_sentence
from imgtrans.core.source_info import source_arguments, source_docstring
from imgtrans.util.errors import PluginCodeError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "imgtrans-example-plugin"
HEAVY = ("torch", "albumentations", "cv2")
FAST_COMMANDS = [["list", "generator"], ["list"], ["info", "generator", "unet_256"], ["info", "dataset_format", "aligned"],
                 ["plugins"], ["zoo", "list", "--json"], ["zoo", "list"], ["data", "list"], ["--help"]]

PROBE = """
import sys
from imgtrans.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    status = exc.code
else:
    status = 0
print("HEAVY:" + ",".join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
sys.exit(status)
"""


def _probe(args: list[str], extra_path: list[Path] = ()) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, extra_path), *filter(None, [env.get("PYTHONPATH")])])
    env.pop("IMGTRANS_DISABLE_PLUGINS", None)
    return subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *args], env=env,
                          capture_output=True, text=True, timeout=120)


def _heavy(result: subprocess.CompletedProcess[str]) -> list[str]:
    line = [x for x in result.stderr.splitlines() if x.startswith("HEAVY:")][-1]
    return [m for m in line.removeprefix("HEAVY:").split(",") if m]


@pytest.mark.parametrize("args", FAST_COMMANDS, ids=" ".join)
def test_listing_commands_import_no_torch(args: list[str]) -> None:
    result = _probe(args)
    assert result.returncode == 0, result.stderr
    assert _heavy(result) == [], f"imgtrans {' '.join(args)} imported {_heavy(result)}"


def _dist_info(site: Path, dist: str, module: str) -> Path:
    """An installed distribution whose entry point is ``module`` (already in ``site``), as pip would leave it."""
    info = site / f"{dist.replace('-', '_')}-0.0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text(f"[imgtrans]\n{module} = {module}\n")
    return site


def test_the_example_plugin_loads_without_torch(tmp_path) -> None:
    """The example third-party plugin (copied by plugin authors) registers lazily too."""
    import shutil

    shutil.copytree(EXAMPLE / "imgtrans_example", tmp_path / "site" / "imgtrans_example")
    site = _dist_info(tmp_path / "site", "imgtrans-example", "imgtrans_example")
    result = _probe(["list", "generator", "example*"], [site])
    assert result.returncode == 0, result.stderr
    assert "example_tiny" in result.stdout and _heavy(result) == []


def test_building_a_component_imports_it() -> None:
    """The probe itself can fail: creating a generator does import torch."""
    result = _probe(["info", "recipe", "pix2pix"])  # recipes are described from the imported class
    assert result.returncode == 0, result.stderr
    assert "torch" in _heavy(result)


# the source reader agrees with the import --------------------------------------------------------
def _lazy_components() -> list[Component]:
    registry = imgtrans.get_registry()
    return [c for kind in KINDS for c in registry.components(kind) if c.target is not None]


def test_bundled_components_are_registered_lazily() -> None:
    lazy = {(c.kind, c.name) for c in _lazy_components()}
    assert {("generator", "unet_256"), ("dataset_format", "aligned"), ("recipe", "cyclegan")} <= lazy


@pytest.mark.parametrize("component", _lazy_components(), ids=lambda c: f"{c.kind}-{c.name}")
def test_source_agrees_with_import(component: Component) -> None:
    from_source = source_arguments(component.target)
    fresh = Component(component.kind, component.name, component.target, component.plugin)
    assert fresh.description == first_sentence(component.factory.__doc__)
    assert source_docstring(component.target) is not None
    if component.kind in ("generator", "discriminator", "dataset_format"):
        assert from_source is not None, f"{component.target}: info would import torch"
    if from_source is not None:
        assert from_source == arguments(component.factory)


def test_builtin_metric_table_matches_the_modules() -> None:
    from imgtrans.core.builtin_plugin import BUILTIN_METRICS
    from imgtrans.core.interfaces import PairedMetric, SetMetric

    registry = imgtrans.get_registry()
    core = {c.name for c in registry.components("metric") if c.plugin == "imgtrans"}
    assert core == set(BUILTIN_METRICS)
    assert all(issubclass(registry.get("metric", n).factory, (PairedMetric, SetMetric)) for n in core)


def test_builtin_format_table_matches_the_modules() -> None:
    from imgtrans.core.builtin_plugin import BUILTIN_FORMATS
    from imgtrans.data.formats import FORMATS
    from imgtrans.data.unpaired import FORMATS as UNPAIRED

    classes = {**FORMATS, **UNPAIRED}
    assert set(BUILTIN_FORMATS) == set(classes)
    registry = imgtrans.get_registry()
    assert all(registry.get("dataset_format", n).factory is cls for n, cls in classes.items())


def test_builtin_pair_maker_table_matches_the_module() -> None:
    from imgtrans.core.builtin_plugin import BUILTIN_PAIR_MAKERS
    from imgtrans.data.pairmakers import PAIR_MAKERS

    assert set(BUILTIN_PAIR_MAKERS) == set(PAIR_MAKERS)
    registry = imgtrans.get_registry()
    assert all(registry.get("pair_maker", n).factory is cls for n, cls in PAIR_MAKERS.items())


def test_source_reader_gives_up_on_what_it_cannot_settle(tmp_path, monkeypatch) -> None:
    pkg = tmp_path / "lazyprobe"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text(
        "import functools\nLIMIT = 3\n"
        "class Computed:\n    '''Default is a name.'''\n    def __init__(self, n: int = LIMIT): pass\n"
        "def deco(cls):\n    return cls\n@deco\nclass Decorated:\n    def __init__(self, n: int = 1): pass\n"
        "class Twice:\n    def __init__(self, n: int = 1): pass\n"
        "Twice = functools.partial(Twice, n=2)\n"
        "class Plain:\n    '''Plain one. More.\n\n    Args:\n        n: how many\n    '''\n"
        "    def __init__(self, n: int | None = None, *, k: str = 'x'): pass\n"
        "class Child(Plain):\n    '''Inherits.'''\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import lazyprobe  # noqa: F401 - the plugin's package is imported, as its entry point would be

    for name in ("Computed", "Decorated", "Twice"):
        assert source_arguments(f"lazyprobe.mod:{name}") is None, name
    plain = [{"name": "n", "type": "int | None", "default": None, "required": False, "help": "how many"},
             {"name": "k", "type": "str", "default": "x", "required": False, "help": ""}]
    assert source_arguments("lazyprobe.mod:Plain") == plain
    child = source_arguments("lazyprobe.mod:Child")
    assert [a["name"] for a in child] == ["n", "k"]
    import lazyprobe.mod as mod

    for name in ("Plain", "Child"):
        assert source_arguments(f"lazyprobe.mod:{name}") == arguments(getattr(mod, name))


# failures -------------------------------------------------------------------------------------------
def _host(name: str, register) -> PluginHost:
    module = types.ModuleType(name)
    module.register_components = hookimpl(register)
    host = PluginHost()
    host.register_builtin()
    host.register_module(module, PluginInfo(name, name))
    host.collect()
    return host


def test_a_misspelt_module_rejects_the_plugin_at_load(capsys) -> None:
    host = _host("typo_plugin", lambda registry: registry.generator("g", "imgtrans_pix2pix.unett:UnetGenerator"))
    assert "imgtrans_pix2pix.unett" in host.plugins["typo_plugin"].error
    assert "g" not in host.registry.names("generator")


def test_a_malformed_target_rejects_the_plugin(capsys) -> None:
    host = _host("bad_target", lambda registry: registry.loss("x", "no colon here"))
    assert "package.module:attribute" in host.plugins["bad_target"].error


def test_a_module_failing_on_import_is_one_line_when_used(tmp_path, monkeypatch) -> None:
    (tmp_path / "brokenmod.py").write_text("import not_a_real_dependency_xyz\nclass G:\n    '''A G.'''\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    host = _host("broken", lambda registry: registry.generator("broken_g", "brokenmod:G"))
    component = host.registry.get("generator", "broken_g")
    assert host.plugins["broken"].error is None and component.description == "A G"  # listing still works
    with pytest.raises(PluginCodeError) as caught:
        host.registry.create("generator", "broken_g")
    message = str(caught.value)
    assert "\n" not in message and "broken_g" in message and "not_a_real_dependency_xyz" in message
    host.check_components()  # what `imgtrans plugins --check` runs
    assert any("not_a_real_dependency_xyz" in e for e in host.plugins["broken"].component_errors)


def test_plugins_check_reports_a_component_that_fails_to_import(tmp_path) -> None:
    """Through real entry-point metadata: `plugins` says ok (nothing imported), `--check` says why not."""
    site = _dist_info(tmp_path / "site", "lazy-broken", "lazy_broken")
    (site / "lazy_broken").mkdir()
    (site / "lazy_broken" / "__init__.py").write_text(
        "from imgtrans import hookimpl\n@hookimpl\ndef register_components(registry):\n"
        "    registry.generator('lazy_g', 'lazy_broken.nets:G')\n")
    (site / "lazy_broken" / "nets.py").write_text("raise RuntimeError('boom at import')\n")
    plain = _probe(["plugins", "--json"], [site])
    assert plain.returncode == 0, plain.stderr
    checked = _probe(["plugins", "--json", "--check"], [site])
    assert checked.returncode == 1
    found = {p["name"]: p for p in json.loads(checked.stdout)}
    assert "boom at import" in found["lazy_broken"]["component_errors"][0]
    assert found["pix2pix"]["component_errors"] == []


def test_eager_registration_still_works() -> None:
    class Eager:
        """An eager one."""

        def __init__(self, width: int = 2):
            self.width = width

    host = _host("eager", lambda registry: registry.generator("eager_g", Eager))
    component = host.registry.get("generator", "eager_g")
    assert component.target is None and component.description == "An eager one"
    assert host.registry.create("generator", "eager_g", width=3).width == 3
