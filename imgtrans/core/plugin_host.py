"""Plugin manager: discovers plugins through the ``imgtrans`` entry-point group and isolates failures.

Plugins are loaded lazily, on first use of the registry, so ``import imgtrans`` stays cheap.
A plugin that fails to import, implements a hook that does not exist, whose hook raises, or
whose registrations do not validate (see :mod:`imgtrans.core.staging`) is recorded with its error,
reported once on stderr, and skipped as a whole; everything else keeps working.
``IMGTRANS_DISABLE_PLUGINS`` (comma separated entry-point names, or ``*``) turns plugins off
without uninstalling them.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from ..util.errors import ImgtransError
from ..util.terminal import warn_stderr
from ..util.version import __version__
from . import builtin_plugin as builtin
from . import hookspecs
from .dataset_catalog import DatasetCatalog
from .registry import Registry
from .staging import STAGED_HOOKS, Staging, check_hook_names, plugin_anchor
from .zoo_manifest import load_zoo

ENTRY_POINT_GROUP = "imgtrans"
#: the CLI's own commands, whose names a plugin's command may not take (the CLI checks at import
#: that this is exactly its set of commands, so the two cannot drift)
BUILTIN_COMMANDS = frozenset({"train", "translate", "serve", "eval", "export", "plugins", "list", "info", "zoo",
                              "data"})
DISABLE_ENV = "IMGTRANS_DISABLE_PLUGINS"
DEBUG_ENV = "IMGTRANS_DEBUG"
#: key of a model file's ``directions`` entry holding the :func:`provenance` record of its generator
PROVENANCE_KEY = "provided_by"


def debug_enabled() -> bool:
    """True under ``imgtrans --debug`` or ``IMGTRANS_DEBUG=1``: show tracebacks behind one-line errors."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


#: what plugin code may raise and still be only that plugin's failure: a plugin whose import calls
#: ``sys.exit(3)`` or raises KeyboardInterrupt must not end every command (BaseException's other
#: members, GeneratorExit, never come from a call)
PLUGIN_FAILURES = (Exception, SystemExit, KeyboardInterrupt)


@contextlib.contextmanager
def _plugin_code() -> Iterator[None]:
    """Run plugin code with its prints on stderr: stdout carries the commands' output (``list
    --json`` must stay JSON whatever a plugin prints at import)."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


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
    #: components registered by import path whose module failed to import (``imgtrans plugins --check``)
    component_errors: list[str] = field(default_factory=list)


class PluginHost:
    """Owns the pluggy manager, the component registry and the dataset catalog."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("imgtrans")
        self.pm.add_hookspecs(hookspecs)
        self.registry = Registry()
        self.catalog = DatasetCatalog()
        self.zoo_manifests: list[Any] = []  # validated {name: ZooEntry} batches, one per plugin
        self.zoo_plugins: dict[str, str] = {}  # zoo model name -> the plugin that registered it
        self.commands: dict[str, Any] = {}  # command name -> click command, from accepted plugins
        self.command_plugins: dict[str, str] = {}
        self.plugins: dict[str, PluginInfo] = {}
        self._warned: set[str] = set()
        self._zoo_owners: dict[str, str] | None = None
        self._collected: set[str] = set()

    # discovery -----------------------------------------------------------------------------
    def register_builtin(self) -> None:
        """The core's own components (dataset formats, metrics) go through the same hooks as any plugin."""

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
                with _plugin_code():
                    module = ep.load()
            except PLUGIN_FAILURES as exc:  # any import failure must be isolated, sys.exit() included
                self._fail(info, _describe(exc))
                continue
            self.register_module(module, info)

    def register_module(self, module: ModuleType | object, info: PluginInfo) -> None:
        """Register an already imported plugin object (entry points and tests both come here)."""
        self.plugins.setdefault(info.name, info)
        try:
            self.pm.register(module, name=info.name)
        except Exception as exc:  # noqa: BLE001 - e.g. a hook with arguments the spec does not have
            self._fail(info, _describe(exc))
            return
        try:
            check_hook_names(module, self.pm.get_hookcallers(module) or [], _spec_names(), self.pm.project_name)
        except Exception as exc:  # noqa: BLE001 - a misspelt hook: the whole plugin is rejected
            self.pm.unregister(module)
            self._fail(info, _describe(exc))
            return
        info.hooks = sorted(h.name for h in self.pm.get_hookcallers(module) or [])

    # running hooks -------------------------------------------------------------------------
    def collect(self) -> None:
        """Run every hook of one plugin at a time into a staging area; keep all of it or none.

        Plugins already collected are skipped, so plugins registered later can be collected too.
        """
        for name, info in list(self.plugins.items()):
            plugin = self.pm.get_plugin(name)
            if plugin is not None and not info.error and not info.disabled and name not in self._collected:
                self._collected.add(name)
                self._collect_plugin(plugin, info)

    def _collect_plugin(self, plugin: object, info: PluginInfo) -> None:
        staging = Staging(self, info.name, plugin_anchor(plugin))
        try:
            with _plugin_code():
                for hook in STAGED_HOOKS:
                    for impl in getattr(self.pm.hook, hook).get_hookimpls():
                        if impl.plugin is plugin:
                            kwargs = staging.hook_arguments(hook)
                            impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})
            staging.validate()
        except PLUGIN_FAILURES as exc:  # anything a plugin does wrong rejects that plugin only
            self._fail(info, _describe(exc))
            return
        staging.commit()
        for name in staging.zoo:
            self.zoo_owners()[name] = f"plugin {info.name!r}"
            self.zoo_plugins[name] = info.name

    def add_commands(self, cli: Any) -> None:
        """Add the commands of accepted plugins (validated at collection: no clash with built-ins)."""
        for name, command in self.commands.items():
            if name not in cli.commands:
                cli.add_command(command, name)

    def check_components(self) -> None:
        """Import every component registered by import path (lazily), recording each failure on its
        plugin's ``component_errors``: what ``imgtrans plugins --check`` reports."""
        from .registry import KINDS

        for kind in KINDS:
            for component in self.registry.components(kind):
                if component.target is None or component.loaded:
                    continue
                try:
                    component.factory  # noqa: B018 - imports the module
                except ImgtransError as exc:
                    info = self.plugins.get(component.plugin)
                    if info is not None:
                        info.component_errors.append(str(exc))

    def zoo_owners(self) -> dict[str, str]:
        """Zoo model names taken so far, and by whom (the bundled manifest, then plugins)."""
        if self._zoo_owners is None:
            try:
                self._zoo_owners = {name: f"the bundled manifest {entry.origin}" for name, entry in load_zoo().items()}
            except Exception:  # noqa: BLE001 - a broken bundled manifest is reported by zoo commands
                self._zoo_owners = {}
        return self._zoo_owners

    def builtin_commands(self) -> set[str]:
        return set(BUILTIN_COMMANDS)

    def _fail(self, info: PluginInfo, error: str, key: str | None = None) -> None:
        info.error = error
        key = key or info.name
        if key not in self._warned:
            self._warned.add(key)
            warn_stderr(f"plugin {info.name!r} ({info.module}) failed and is skipped: {error}")
            current = sys.exc_info()[1]
            if debug_enabled() and current is not None:
                traceback.print_exception(type(current), current, current.__traceback__)


def _dist(ep: metadata.EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


def _spec_names() -> list[str]:
    return sorted(name for name, f in vars(hookspecs).items() if hasattr(f, "imgtrans_spec"))


def _describe(exc: BaseException) -> str:
    """One line; the raising line of code only for unexpected errors (ours already name the culprit)."""
    message = " ".join(str(exc).split())
    if isinstance(exc, ImgtransError):
        return f"{type(exc).__name__}: {message}"
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" ({last[0].filename}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {message}{where}"


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


def provenance(kind: str, name: str) -> dict[str, str | None]:
    """Which plugin, distribution and version provide component ``name`` of ``kind``.

    Recorded in model files (each ``directions`` entry, under :data:`PROVENANCE_KEY`) so that a
    file whose generator is not installed can say what to install.
    """
    host = get_host()
    component = host.registry.get(kind, name)
    info = host.plugins.get(component.plugin)
    return {"plugin": component.plugin, "distribution": info.distribution if info else None,
            "version": info.version if info else None}


def provenance_note(entry: Any, kind: str = "generator") -> str:
    """What to install for a model file's component, from the :func:`provenance` record in its
    ``directions`` entry (under :data:`PROVENANCE_KEY`); "" when the file records none."""
    origin = entry.get(PROVENANCE_KEY) if isinstance(entry, dict) else None
    if isinstance(origin, str):  # tolerate a record stored as a JSON string
        try:
            origin = json.loads(origin)
        except json.JSONDecodeError:
            return ""
    if not isinstance(origin, dict) or not origin.get("distribution"):
        return ""
    dist, version = origin["distribution"], origin.get("version")
    return (f"The model's {kind} came from plugin {origin.get('plugin')!r} of distribution "
            f"{dist}{' ' + version if version else ''}: install it (pip install {dist}).")


def reset_host(host: PluginHost | None = None) -> None:
    """Forget loaded plugins (tests use this to load a different set)."""
    global _host
    with _lock:
        _host = host

