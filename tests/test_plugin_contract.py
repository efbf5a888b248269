"""The plugin contract (issue 12, items 3-7): a plugin works as a whole or is rejected as a whole,
naming itself and the rule it broke; its code's failures are one line; what it registers can be
inspected with ``imgtrans info`` / :func:`imgtrans.describe`.

Plugins here are module objects registered directly on a :class:`PluginHost` (fast); one
subprocess test goes through real entry-point metadata for the exit status of ``imgtrans plugins``.
"""
from __future__ import annotations

import json
import re
import types
from pathlib import Path

import pytest
from click.testing import CliRunner
from torch import nn

import imgtrans
import imgtrans.core.plugin_host as plugins_module
from imgtrans.cli import cli
from imgtrans.core.hookspecs import hookimpl
from imgtrans.core.interfaces import RecipeOption, Slot
from imgtrans.core.plugin_host import PluginHost, PluginInfo, provenance
from imgtrans.core.zoo_manifest import load_zoo
from imgtrans.util.errors import PluginCodeError, UnknownNameError

GOOD_ENTRY = {"recipe": "pix2pix", "generator": "unet_256", "format": "safetensors",
              "source": "https://example.invalid/weights.safetensors"}


class Tiny(nn.Module):
    """A tiny module: registered by the fake plugins below. Second sentence."""

    def __init__(self, width: int = 2):
        super().__init__()
        self.width = width


def plugin(name: str = "fake_plugin", file: Path | None = None, **hooks) -> types.ModuleType:
    """A plugin module whose functions are the given hooks (marked with @hookimpl)."""
    module = types.ModuleType(name)
    if file is not None:
        module.__file__ = str(file)
    for hook, function in hooks.items():
        setattr(module, hook, hookimpl(function))
    return module


def host_with(*plugins: tuple[str, types.ModuleType], **info) -> PluginHost:
    host = PluginHost()
    host.register_builtin()
    for name, module in plugins:
        host.register_module(module, PluginInfo(name, module.__name__, **info.get(name, {})))
    host.collect()
    return host


@pytest.fixture
def use_host(monkeypatch):
    """Make ``host`` the process-wide one (CLI and library) for one test; the CLI starts afresh."""
    monkeypatch.setattr(cli, "commands", dict(cli.commands))
    monkeypatch.setattr(cli, "_plugins_loaded", False)
    monkeypatch.setenv("IMGTRANS_DEBUG", "0")

    def use(host: PluginHost) -> PluginHost:
        monkeypatch.setattr(plugins_module, "_host", host)
        return host

    return use


def run(*args: str, **env: str):
    return CliRunner().invoke(cli, [str(a) for a in args], env={"COLUMNS": "80", **env})


# 3. registrations are isolated and atomic per plugin -------------------------------------------
def test_bad_zoo_registrations_reject_only_their_plugin(tmp_path, capsys, use_host) -> None:
    malformed = tmp_path / "malformed.toml"
    malformed.write_text('[models.bad]\nrecipe = "pix2pix"\ngenerator = "unet_256"\nsource = 3\nformat = "safetensors"\n')
    host = use_host(host_with(
        ("dup", plugin(register_zoo=lambda manifests: manifests.append({"basemap_a2b": GOOD_ENTRY}))),
        ("missing", plugin(register_zoo=lambda manifests: manifests.append(str(tmp_path / "nowhere.toml")))),
        ("malformed", plugin(register_zoo=lambda manifests: manifests.append(str(malformed)))),
        ("twice", plugin(register_zoo=lambda manifests: manifests.extend([{"t": GOOD_ENTRY}, {"t": GOOD_ENTRY}]))),
        ("good", plugin(register_zoo=lambda manifests: manifests.append({"good_model": GOOD_ENTRY}))),
    ))
    errors = {name: host.plugins[name].error for name in ("dup", "missing", "malformed", "twice", "good")}
    assert "basemap_a2b" in errors["dup"] and "bundled manifest" in errors["dup"] and "'dup'" in errors["dup"]
    assert "nowhere.toml does not exist" in errors["missing"]
    assert "source must be str" in errors["malformed"]
    assert "zoo model 't' is declared twice" in errors["twice"]
    assert errors["good"] is None
    warnings = capsys.readouterr().err.splitlines()
    for name in ("dup", "missing", "malformed", "twice"):
        assert sum(line.startswith(f"imgtrans: warning: plugin {name!r}") for line in warnings) == 1, warnings

    zoo = load_zoo(host.zoo_manifests)  # what every zoo command reads: the good plugin's entry is there
    assert "good_model" in zoo and "basemap_a2b" in zoo and "bad" not in zoo
    listed = run("zoo", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert "good_model" in {m["name"] for m in json.loads(listed.output)}
    status = run("plugins", "--json")
    assert status.exit_code == 1  # CI catches a failed plugin
    assert {p["name"]: p["error"] for p in json.loads(status.output)}["missing"] == errors["missing"]


def test_relative_zoo_paths_resolve_against_the_plugin_not_the_working_directory(tmp_path, monkeypatch) -> None:
    package = tmp_path / "site" / "imgtrans_zooplugin"
    (package / "weights").mkdir(parents=True)
    (package / "weights" / "w.safetensors").write_bytes(b"x")
    (package / "zoo.toml").write_text('[models.from_file]\nrecipe = "pix2pix"\ngenerator = "unet_256"\n'
                                      'source = "weights/w.safetensors"\nformat = "safetensors"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    def register_zoo(manifests):
        manifests.append("zoo.toml")
        manifests.append({"from_mapping": {**GOOD_ENTRY, "source": "weights/w.safetensors"}})

    host = host_with(("zp", plugin(file=package / "__init__.py", register_zoo=register_zoo)))
    assert host.plugins["zp"].error is None
    zoo = load_zoo(host.zoo_manifests)
    for name in ("from_file", "from_mapping"):
        assert zoo[name].local_source() == package / "weights" / "w.safetensors"

    # a plugin module without a file cannot have relative paths: it is told so, not silently cwd-based
    (elsewhere / "zoo.toml").write_text((package / "zoo.toml").read_text())
    fileless = host_with(("nofile", plugin(register_zoo=lambda manifests: manifests.append("zoo.toml"))))
    assert "relative" in fileless.plugins["nofile"].error


def test_a_plugin_is_rejected_across_all_its_hooks(capsys) -> None:
    def components(registry):
        registry.generator("half_registered", Tiny)

    def datasets(catalog):
        catalog.add("half_dataset", "fine")
        catalog.add("shared", "taken by the owner plugin")

    def zoo(manifests):
        manifests.append({"half_zoo": GOOD_ENTRY})

    host = host_with(("owner", plugin(register_datasets=lambda catalog: catalog.add("shared", "mine"))),
                     ("clash", plugin(register_components=components, register_datasets=datasets,
                                      register_zoo=zoo)))
    error = host.plugins["clash"].error
    assert "'shared'" in error and "'owner'" in error and "'clash'" in error
    assert "half_registered" not in host.registry.names("generator")
    assert "half_dataset" not in host.catalog and host.catalog.get("shared").plugin == "owner"
    assert host.zoo_manifests == []

    # a bad zoo entry takes the plugin's components down with it
    bad_zoo = host_with(("badzoo", plugin(register_components=components,
                                          register_zoo=lambda manifests: manifests.append({"x": {"recipe": 1}}))))
    assert bad_zoo.plugins["badzoo"].error and "half_registered" not in bad_zoo.registry.names("generator")


def test_a_dataset_registered_twice_by_one_plugin_rejects_it() -> None:
    def datasets(catalog):
        catalog.add("mine", "first")
        catalog.add("mine", "again")

    host = host_with(("twice", plugin(register_datasets=datasets)))
    assert "registers dataset 'mine' twice" in host.plugins["twice"].error
    assert "mine" not in host.catalog


def test_plugins_registered_later_are_collected_alone() -> None:
    host = host_with(("first", plugin(register_datasets=lambda catalog: catalog.add("first_data", "one"))))
    late = plugin(register_datasets=lambda catalog: catalog.add("late_data", "two"))
    host.register_module(late, PluginInfo("late", "late"))
    host.collect()  # the first plugin is not run again (it would clash with itself)
    assert host.plugins["first"].error is None and host.plugins["late"].error is None
    assert {"first_data", "late_data"} <= set(host.catalog.names())


# 4. misspelt or unmarked hooks --------------------------------------------------------------------
def test_misspelt_hook_is_an_error_for_that_plugin(capsys) -> None:
    def register_component(registry):
        registry.generator("never_called", Tiny)

    host = host_with(("typo", plugin(register_component=register_component)))
    error = host.plugins["typo"].error
    assert "unknown hook 'register_component'" in error and "Did you mean 'register_components'?" in error
    assert "never_called" not in host.registry.names("generator")
    assert "plugin 'typo'" in capsys.readouterr().err

    unmarked = plugin()
    unmarked.register_components = lambda registry: registry.generator("never_called", Tiny)
    host = host_with(("unmarked", unmarked))
    assert "not marked with @imgtrans.hookimpl" in host.plugins["unmarked"].error


# 5. plugin code errors, --debug, provenance ----------------------------------------------------------
class Exploding(nn.Module):
    def __init__(self, width: int = 2):
        super().__init__()
        raise RuntimeError("kaboom\nsecond line")


def test_plugin_constructor_error_is_one_line_naming_plugin_and_component(use_host) -> None:
    host = host_with(("boomer", plugin(register_components=lambda registry: registry.generator("exploding", Exploding))))
    with pytest.raises(PluginCodeError) as err:
        host.registry.create("generator", "exploding", width=3)
    assert str(err.value) == "generator 'exploding' (plugin 'boomer') failed: RuntimeError: kaboom second line"
    assert isinstance(err.value.__cause__, RuntimeError)


def test_cli_shows_plugin_errors_on_one_line_and_tracebacks_with_debug(use_host) -> None:
    import click

    def register_commands(cli):
        @cli.command("explode")
        def explode() -> None:
            """Build the exploding generator."""
            imgtrans.create_generator("exploding")

        @cli.command("crash")
        def crash() -> None:
            """Fail in the command itself."""
            raise ZeroDivisionError("oops")

        assert isinstance(cli, click.Group)

    use_host(host_with(("boomer", plugin(register_commands=register_commands,
                                         register_components=lambda registry: registry.generator("exploding", Exploding)))))
    result = run("explode")
    assert result.exit_code == 1
    assert result.output == "error: generator 'exploding' (plugin 'boomer') failed: RuntimeError: kaboom second line\n"
    crashed = run("crash")
    assert crashed.exit_code == 1
    assert crashed.output == "error: command 'crash' (plugin 'boomer') failed: ZeroDivisionError: oops\n"
    for debug in (run("--debug", "explode"), run("explode", IMGTRANS_DEBUG="1")):
        assert "Traceback" in debug.output and "kaboom" in debug.output
        assert debug.output.rstrip().splitlines()[-1].startswith("error: generator 'exploding'")


def test_provenance_and_the_missing_distribution_of_a_checkpoint(use_host) -> None:
    use_host(host_with(("fancy", plugin(register_components=lambda registry: registry.generator("fancy_gen", Tiny))),
                       fancy={"distribution": "imgtrans-fancy", "version": "1.2"}))
    record = provenance("generator", "fancy_gen")
    assert record == {"plugin": "fancy", "distribution": "imgtrans-fancy", "version": "1.2"}

    from imgtrans.inference.model import build_generator

    use_host(host_with())  # the plugin is no longer installed
    with pytest.raises(UnknownNameError) as err:  # a model file's ``directions`` entry
        build_generator({"network": "generator", "generator": {"name": "fancy_gen"}, "provided_by": record})
    message = str(err.value)
    assert "unknown generator 'fancy_gen'" in message and "\n" not in message
    assert "distribution imgtrans-fancy 1.2" in message and "pip install imgtrans-fancy" in message
    with pytest.raises(UnknownNameError) as err:  # files that record no provenance still get the plain message
        build_generator({"generator": {"name": "fancy_gen"}})
    assert "imgtrans-fancy" not in str(err.value)


# 6. descriptions, --help, exit status ------------------------------------------------------------------
def test_description_is_the_first_sentence_colons_included() -> None:
    class Colon(nn.Module):
        """Generator: maps ``A`` to B (e.g. maps). More details here.

        A second paragraph."""

    class NoDoc(Tiny):
        pass

    def register_components(registry):
        registry.generator("colon", Colon)
        registry.generator("nodoc", NoDoc)
        registry.generator("tiny", Tiny)

    registry = host_with(("d", plugin(register_components=register_components))).registry
    assert registry.get("generator", "colon").description == "Generator: maps A to B (e.g. maps)"
    assert registry.get("generator", "tiny").description == "A tiny module: registered by the fake plugins below"
    assert registry.get("generator", "nodoc").description == ""  # not the base class's text


def test_plugin_commands_are_listed_in_help(use_host) -> None:
    def register_commands(cli):
        @cli.command("hello")
        def hello() -> None:
            """Say hello from a plugin."""

    use_host(host_with(("greeter", plugin(register_commands=register_commands))))
    result = run("--help")
    assert result.exit_code == 0 and "hello" in result.output and "Say hello from a plugin" in result.output


def test_a_plugin_cannot_replace_a_builtin_command() -> None:
    def register_commands(cli):
        @cli.command("train")
        def train() -> None:
            """Hijack."""

    host = host_with(("hijack", plugin(register_commands=register_commands)))
    assert "'train' is built into imgtrans" in host.plugins["hijack"].error and not host.commands


# 7. imgtrans info / imgtrans.describe ----------------------------------------------------------------
class Documented(nn.Module):
    """A documented generator.

    Args:
        width: channels of the first layer; the rest double at every level, which is a long help
            text that must wrap inside an eighty-column terminal rather than run off its edge.
        depth (int): number of levels.
    """

    def __init__(self, in_channels: int = 3, width: int = 8, depth: int | None = None, *, mode: str = "fast"):
        super().__init__()


class RoleSlot:
    kind, default, args, role = "loss", "l1", None, "pixel"


class MyRecipe:
    """A recipe with one declared role."""

    slots = {"generator": Slot("generator", "documented"), "pixel_loss": RoleSlot()}
    options = (RecipeOption("--lambda-x", ("recipe.lambda_x",), "Weight of the pixel loss [10].", float),)
    optim_defaults = {"lr": 0.001}

    def __init__(self, components: dict, lambda_x: float = 10.0):
        """Build the recipe.

        :param lambda_x: weight of the pixel loss.
        """


def test_describe_and_info(use_host) -> None:
    def register_components(registry):
        registry.generator("documented", Documented)
        registry.recipe("my_recipe", MyRecipe)

    use_host(host_with(("docs", plugin(register_components=register_components)),
                       docs={"distribution": "imgtrans-docs", "version": "0.3"}))
    data = imgtrans.describe("generators", "documented")
    assert (data["plugin"], data["distribution"], data["version"]) == ("docs", "imgtrans-docs", "0.3")
    args = {a["name"]: a for a in data["arguments"]}
    assert list(args) == ["in_channels", "width", "depth", "mode"]
    assert args["width"]["type"] == "int" and args["width"]["default"] == 8
    assert args["width"]["help"].startswith("channels of the first layer") and args["width"]["help"].endswith("edge.")
    assert args["depth"]["type"] == "int | None" and args["depth"]["help"] == "number of levels."
    assert args["in_channels"]["help"] == ""

    recipe = imgtrans.describe("recipe", "my_recipe")
    assert [a["name"] for a in recipe["arguments"]] == ["lambda_x"]
    assert recipe["arguments"][0]["help"] == "weight of the pixel loss."
    assert recipe["slots"][1] == {"name": "pixel_loss", "kind": "loss", "default": "l1", "role": "pixel", "args": {}}
    assert recipe["optim_defaults"] == {"lr": 0.001}
    assert recipe["options"] == [{"flag": "--lambda-x", "keys": ["recipe.lambda_x"], "type": "float",
                                  "help": "Weight of the pixel loss [10]."}]

    result = run("info", "generator", "documented", TTY_COMPATIBLE="1")  # an 80-column terminal
    assert result.exit_code == 0, result.output
    drawn = re.sub(r"\x1b\[[0-9;]*m", "", result.output)
    assert max(len(line) for line in drawn.splitlines()) <= 80
    for text in ("imgtrans-docs", "width", "int | None", "eighty-column", '"fast"'):
        assert text in drawn
    piped = run("info", "generator", "documented").output  # plain, one line per argument
    assert not set("┃│━") & set(piped) and any(line.startswith("width ") for line in piped.splitlines())
    assert json.loads(run("info", "generators", "documented", "--json").output) == data
    shown = run("info", "recipes", "my_recipe").output
    assert "pixel_loss" in shown and "role" in shown and "--lambda-x" in shown and "lambda_x" in shown
    assert max(len(line) for line in shown.splitlines()) <= 80
    assert run("list", "generators").exit_code == 0 and "documented" in run("list", "generators").output
    wrong = run("info", "genrator", "documented")
    assert wrong.exit_code == 2 and "Did you mean 'generator'?" in wrong.output


# one real installation: exit status and warnings through entry points --------------------------------
@pytest.mark.slow
def test_installed_plugins_with_a_typo_and_a_missing_manifest(tmp_path) -> None:
    from test_third_party_plugin import run_cli, write_dist

    site = tmp_path / "site"
    write_dist(site, "imgtrans-typo", "typo", "imgtrans_typo",
               "from imgtrans import hookimpl\n\n@hookimpl\ndef register_component(registry):\n    pass\n")
    write_dist(site, "imgtrans-nozoo", "nozoo", "imgtrans_nozoo",
               "from imgtrans import hookimpl\n\n@hookimpl\ndef register_zoo(manifests):\n"
               "    manifests.append('models.toml')\n")
    home = tmp_path / "home"
    status = run_cli(["plugins", "--json"], [site], home)
    assert status.returncode == 1, status.stderr
    errors = {p["name"]: p["error"] for p in json.loads(status.stdout)}
    assert "register_component" in errors["typo"]
    assert str(site / "imgtrans_nozoo" / "models.toml") in errors["nozoo"]
    assert errors["pix2pix"] is None
    listed = run_cli(["zoo", "list"], [site], home)
    assert listed.returncode == 0 and "basemap_a2b" in listed.stdout, listed.stderr
    warnings = [line for line in listed.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 2 and "Traceback" not in listed.stderr, listed.stderr


def test_an_error_in_a_recipe_step_is_one_line_naming_the_plugin(registry, tmp_path, monkeypatch) -> None:
    """Issue 12 #5: plugin code failing inside the training loop reads as one line, not a traceback."""
    from click.testing import CliRunner
    from helpers import write_aligned

    from imgtrans.cli import cli

    recipe_cls = registry.get("recipe", "pix2pix").factory

    def broken_step(self, batch, optimizers):
        raise KeyError("fake_B")

    monkeypatch.setattr(recipe_cls, "train_step", broken_step)
    data = write_aligned(tmp_path / "data", count=2, size=32)
    result = CliRunner().invoke(cli, ["train", "pix2pix", "--data", str(data), "--generator", "unet",
                                      "--set", "generator.num_downs=5", "--set", "generator.ngf=4",
                                      "--set", "discriminator.ndf=4", "--load-size", "32", "--crop-size", "32",
                                      "--max-steps", "1", "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert "recipe 'pix2pix' step" in lines[-1] and "plugin 'pix2pix'" in lines[-1] and "KeyError" in lines[-1]
    assert "Traceback" not in result.output


def test_a_recipe_that_is_not_a_recipe_subclass_is_refused_in_one_line() -> None:
    """The core reads a recipe's members as Recipe declares them (no getattr with other defaults),
    so a registered recipe must be a Recipe subclass; anything else is named, not half-used."""
    from imgtrans import hookimpl
    from imgtrans.core.config import resolve
    from imgtrans.util.errors import ConfigError
    from imgtrans.testing import use_plugin

    class NotARecipe:
        slots: dict = {}

    @hookimpl
    def register_components(registry) -> None:
        registry.recipe("not_a_recipe", NotARecipe)

    with use_plugin("odd", register_components):
        with pytest.raises(ConfigError, match="recipe 'not_a_recipe' of plugin 'odd' is .*NotARecipe.*, not a "
                                              "subclass of imgtrans.api.Recipe"):
            resolve("not_a_recipe", imgtrans.get_registry(), [])
