"""Plugin manager: discovers plugins through the ``imgtrans`` entry-point group and isolates failures.

Plugins are loaded lazily, on first use of the registry, so ``import imgtrans`` stays cheap.
A plugin that fails to import, or whose hook raises, is recorded with its error, reported once
on stderr, and skipped; everything else keeps working.  ``IMGTRANS_DISABLE_PLUGINS`` (comma
separated entry-point names, or ``*``) turns plugins off without uninstalling them.
"""
from __future__ import annotations

import os
import threading
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from . import hookspecs
from .registry import PluginRegistrar, Registry
from .terminal import warn_stderr

ENTRY_POINT_GROUP = "imgtrans"
DISABLE_ENV = "IMGTRANS_DISABLE_PLUGINS"


@dataclass
class PluginInfo:
    """What ``imgtrans plugins`` shows about one plugin."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    hooks: list[str] = field(default_factory=list)
    error: str | None = None
    disabled: bool = False


class PluginHost:
    """Owns the pluggy manager, the component registry and the dataset catalog."""

    def __init__(self) -> None:
        from .data.catalog import DatasetCatalog

        self.pm = pluggy.PluginManager("imgtrans")
        self.pm.add_hookspecs(hookspecs)
        self.registry = Registry()
        self.catalog = DatasetCatalog()
        self.zoo_manifests: list[Any] = []
        self.plugins: dict[str, PluginInfo] = {}
        self._warned: set[str] = set()

    # discovery -----------------------------------------------------------------------------
    def register_builtin(self) -> None:
        """The core's own components (dataset formats) go through the same hooks as any plugin."""
        from . import __version__
        from .data import builtin

        self.register_module(builtin, PluginInfo("imgtrans", builtin.__name__, "imgtrans", __version__))

    def load_entry_points(self) -> None:
        disabled = {s.strip() for s in os.environ.get(DISABLE_ENV, "").split(",") if s.strip()}
        # Bundled plugins first, then third parties by name: on a name clash the newcomer is rejected.
        def order(ep: metadata.EntryPoint) -> tuple[bool, str]:
            return _dist(ep)[0] != "imgtrans", ep.name

        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=order):
            if ep.name in self.plugins:  # the same name from two distributions: keep the first
                self._fail(
                    PluginInfo(ep.name, ep.value, *_dist(ep)),
                    f"entry point name {ep.name!r} is already used by {self.plugins[ep.name].distribution}",
                    key=f"{ep.name}@{ep.value}",
                )
                continue
            info = PluginInfo(ep.name, ep.value, *_dist(ep))
            self.plugins[ep.name] = info
            if "*" in disabled or ep.name in disabled:
                info.disabled = True
                continue
            try:
                module = ep.load()
            except Exception as exc:  # noqa: BLE001 - any import failure must be isolated
                self._fail(info, _describe(exc))
                continue
            self.register_module(module, info)

    def register_module(self, module: ModuleType | object, info: PluginInfo) -> None:
        """Register an already imported plugin object (entry points and tests both come here)."""
        self.plugins.setdefault(info.name, info)
        try:
            self.pm.register(module, name=info.name)
        except Exception as exc:  # noqa: BLE001 - e.g. a hook with a misspelt name
            self._fail(info, _describe(exc))
            return
        info.hooks = sorted(h.name for h in self.pm.get_hookcallers(module) or [])

    # running hooks -------------------------------------------------------------------------
    def collect(self) -> None:
        """Run the registration hooks of every loaded plugin, one plugin at a time."""
        for impl in self.pm.hook.register_components.get_hookimpls():
            registrar = PluginRegistrar(impl.plugin_name)
            if self._call(impl, registry=registrar):
                try:
                    registrar.commit(self.registry)
                except Exception as exc:  # noqa: BLE001
                    self._fail(self.plugins[impl.plugin_name], _describe(exc))
        for impl in self.pm.hook.register_datasets.get_hookimpls():
            view = self.catalog.for_plugin(impl.plugin_name)
            if self._call(impl, catalog=view):
                try:
                    view.commit()
                except Exception as exc:  # noqa: BLE001
                    self._fail(self.plugins[impl.plugin_name], _describe(exc))
        for impl in self.pm.hook.register_zoo.get_hookimpls():
            self._call(impl, manifests=self.zoo_manifests)

    def add_commands(self, cli: Any) -> None:
        for impl in self.pm.hook.register_commands.get_hookimpls():
            self._call(impl, cli=cli)

    def _call(self, impl: pluggy.HookImpl, **kwargs: Any) -> bool:
        info = self.plugins.get(impl.plugin_name) or PluginInfo(impl.plugin_name, impl.plugin_name)
        if info.error:
            return False
        try:
            impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})
            return True
        except Exception as exc:  # noqa: BLE001
            self._fail(info, _describe(exc))
            return False

    def _fail(self, info: PluginInfo, error: str, key: str | None = None) -> None:
        info.error = error
        key = key or info.name
        if key not in self._warned:
            self._warned.add(key)
            warn_stderr(f"plugin {info.name!r} ({info.module}) failed and is skipped: {error}")


def _dist(ep: metadata.EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


def _describe(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" ({last[0].filename}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


_host: PluginHost | None = None
_lock = threading.Lock()


def get_host() -> PluginHost:
    """The process-wide plugin host, loading plugins on first call."""
    global _host
    with _lock:
        if _host is None:
            host = PluginHost()
            host.register_builtin()
            host.load_entry_points()
            host.collect()
            _host = host
        return _host


def reset_host(host: PluginHost | None = None) -> None:
    """Forget loaded plugins (tests use this to load a different set)."""
    global _host
    with _lock:
        _host = host


def provenance(kind: str, name: str) -> dict[str, str | None]:
    """Which plugin and distribution registered component ``name`` (recorded in checkpoints, so a
    file whose generator is missing can say what to install)."""
    host = get_host()
    plugin = host.registry.get(kind, name).plugin
    info = host.plugins.get(plugin)
    return {"plugin": plugin, "distribution": info.distribution if info else None,
            "version": info.version if info else None}
