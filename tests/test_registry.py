"""The registry and the plugin host: wildcards, clear errors, isolation of broken plugins."""
from __future__ import annotations

import types

import pytest
from torch import nn

import imgtrans
from imgtrans.core.hookspecs import hookimpl
from imgtrans.core.plugin_host import PluginHost, PluginInfo
from imgtrans.util.errors import ConfigError, DuplicateComponentError, UnknownNameError


def test_wildcards_and_kinds() -> None:
    assert imgtrans.list_components("generator", "unet_[0-9]*") == ["unet_128", "unet_256"]
    assert "pix2pix" in imgtrans.list_components("recipe")
    assert imgtrans.list_components("loss", "nothing*") == []
    with pytest.raises(UnknownNameError, match="Valid choices: dataset_format, discriminator"):
        imgtrans.list_components("generators")


def test_unknown_name_lists_valid_choices() -> None:
    with pytest.raises(UnknownNameError) as err:
        imgtrans.create_generator("unet_265")
    message = str(err.value)
    assert "Did you mean 'unet_256'?" in message and "unet_128" in message and "\n" not in message


def test_bad_keyword_lists_valid_arguments() -> None:
    with pytest.raises(UnknownNameError, match="ngf") as err:
        imgtrans.create_generator("unet_256", nfg=32)
    assert "'nfg'" in str(err.value)


def test_created_component_remembers_how_it_was_built() -> None:
    gen = imgtrans.create_generator("unet_256", ngf=8)
    assert gen.imgtrans_spec == {"name": "unet_256", "args": {"ngf": 8}}


class Tiny(nn.Module):
    """A tiny module for registration tests."""

    def __init__(self, width: int = 2):
        super().__init__()
        self.width = width


def _plugin(hook):
    module = types.ModuleType("fake_plugin")
    module.register_components = hookimpl(hook)
    return module


def _host_with(*plugins: tuple[str, types.ModuleType]) -> PluginHost:
    host = PluginHost()
    for name, module in plugins:
        host.register_module(module, PluginInfo(name, module.__name__))
    host.collect()
    return host


def test_duplicate_name_is_an_error_naming_both_plugins(capsys) -> None:
    first = _plugin(lambda registry: registry.generator("tiny", Tiny))
    second = _plugin(lambda registry: (registry.generator("other", Tiny), registry.generator("tiny", Tiny)))
    host = _host_with(("first", first), ("second", second))
    assert host.registry.get("generator", "tiny").plugin == "first"
    # the failing plugin's registrations are all-or-nothing: 'other' did not sneak in
    assert host.registry.names("generator") == ["tiny"]
    error = host.plugins["second"].error
    assert "'first'" in error and "'second'" in error and "DuplicateComponentError" in error
    assert "plugin 'second'" in capsys.readouterr().err


def test_registry_add_raises_on_duplicates() -> None:
    from imgtrans.core.registry import Component, Registry

    reg = Registry()
    reg.add(Component("loss", "x", Tiny, "a"))
    with pytest.raises(DuplicateComponentError, match="'a' and again by plugin 'b'"):
        reg.add(Component("loss", "x", Tiny, "b"))


def test_a_raising_hook_is_isolated(capsys) -> None:
    def boom(registry):
        raise RuntimeError("boom")

    good = _plugin(lambda registry: registry.generator("tiny", Tiny))
    host = _host_with(("bad", _plugin(boom)), ("good", good))
    assert host.registry.names("generator") == ["tiny"]
    assert "RuntimeError: boom" in host.plugins["bad"].error
    assert "boom" in capsys.readouterr().err


def test_disable_plugins_by_environment(monkeypatch) -> None:
    monkeypatch.setenv("IMGTRANS_DISABLE_PLUGINS", "pix2pix")
    host = PluginHost()
    host.load_entry_points()
    host.collect()
    assert host.plugins["pix2pix"].disabled
    assert "pix2pix" not in host.registry.names("recipe")


def test_missing_required_argument_is_reported() -> None:
    class NeedsArg(nn.Module):
        def __init__(self, depth: int):
            super().__init__()

    host = _host_with(("p", _plugin(lambda registry: registry.generator("needs", NeedsArg))))
    with pytest.raises(ConfigError, match="needs argument"):
        host.registry.create("generator", "needs")
