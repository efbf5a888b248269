"""One plugin's registrations, staged across every hook, validated, then committed together.

A plugin is accepted or rejected as a whole: if any of its hooks raises, or anything it
registers is malformed or clashes (a component, dataset, zoo model or command name already
taken, a zoo manifest that does not exist or does not parse), nothing it registered is kept,
so no user ever runs half a plugin.  Hook names are checked when the plugin is registered:
a misspelt hook would otherwise never be called and fail silently.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Protocol

from ..util.errors import ConfigError, DuplicateComponentError, UnknownNameError
from .dataset_catalog import DatasetCatalog
from .registry import PluginRegistrar, Registry


class StagingHost(Protocol):
    """What staging reads and commits into (:class:`.plugin_host.PluginHost` is one)."""

    registry: Registry
    catalog: DatasetCatalog
    zoo_manifests: list[Any]
    commands: dict[str, Any]
    command_plugins: dict[str, str]

    def zoo_owners(self) -> dict[str, str]: ...

    def builtin_commands(self) -> set[str]: ...

#: the hooks whose registrations are staged, in the order they run
STAGED_HOOKS = ("register_components", "register_datasets", "register_zoo", "register_commands")


def check_hook_names(plugin: object, hookcallers: list[Any], spec_names: list[str], project: str) -> None:
    """Raise if ``plugin`` implements a hook that does not exist or defines a hook unmarked.

    ``hookcallers`` are pluggy's callers for the plugin's marked functions; one without a spec
    is a hook name imgtrans never calls (``register_component``).  A function named exactly like
    a hook but lacking ``@hookimpl`` would also be silently ignored, so it is an error too.
    """
    for caller in hookcallers:
        if not caller.has_spec():
            raise UnknownNameError("hook", caller.name, spec_names,
                                   note="imgtrans would never call it.")
    for name in spec_names:
        function = getattr(plugin, name, None)
        if callable(function) and not hasattr(function, f"{project}_impl"):
            raise ConfigError(f"{name} is not marked with @imgtrans.hookimpl, so imgtrans would never call it")


def plugin_anchor(plugin: object) -> Path | None:
    """The plugin's module file: what its relative zoo paths are resolved against."""
    module = plugin if hasattr(plugin, "__file__") else sys.modules.get(getattr(plugin, "__module__", ""), None)
    file = getattr(module, "__file__", None)
    return Path(file).resolve() if file else None


class Staging:
    """What one plugin's hooks registered, not yet visible to anyone."""

    def __init__(self, host: StagingHost, plugin_name: str, anchor: Path | None):
        self.host, self.plugin, self.anchor = host, plugin_name, anchor
        self.registrar = PluginRegistrar(plugin_name)
        self.catalog = host.catalog.for_plugin(plugin_name)
        self.zoo_items: list[Any] = []
        self.zoo: dict[str, Any] = {}
        self._commands: Any = None

    def hook_arguments(self, hook: str) -> dict[str, Any]:
        """The keyword arguments a hook receives: staging areas, never the live registries."""
        if hook == "register_components":
            return {"registry": self.registrar}
        if hook == "register_datasets":
            return {"catalog": self.catalog}
        if hook == "register_zoo":
            return {"manifests": self.zoo_items}
        if hook == "register_commands":
            import click

            self._commands = click.Group("staged")
            return {"cli": self._commands}
        raise AssertionError(hook)

    @property
    def commands(self) -> dict[str, Any]:
        return dict(self._commands.commands) if self._commands is not None else {}

    def validate(self) -> None:
        """Raise the first problem; nothing is changed."""
        host = self.host
        self.registrar.validate(host.registry)
        self.catalog.validate()
        if self.zoo_items:
            from .zoo_manifest import plugin_entries

            self.zoo = plugin_entries(self.zoo_items, self.plugin, self.anchor)
            taken = host.zoo_owners()
            for name, entry in self.zoo.items():
                if name in taken:
                    raise DuplicateComponentError(f"zoo model {name!r} is declared by {taken[name]} "
                                                  f"and again by plugin {self.plugin!r}")
        if self.commands:
            reserved = host.builtin_commands()
            for name in self.commands:
                if name in reserved:
                    raise DuplicateComponentError(f"command {name!r} is built into imgtrans; "
                                                  f"plugin {self.plugin!r} cannot replace it")
                if name in host.commands:
                    raise DuplicateComponentError(f"command {name!r} is registered by plugin "
                                                  f"{host.command_plugins[name]!r} and again by plugin {self.plugin!r}")

    def commit(self) -> None:
        host = self.host
        self.registrar.commit(host.registry)
        self.catalog.commit()
        if self.zoo:
            host.zoo_manifests.append(self.zoo)
        for name, command in self.commands.items():
            host.commands[name] = command
            host.command_plugins[name] = self.plugin
