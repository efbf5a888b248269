"""The catalogue of named datasets that plugins register (``register_datasets``): entries and the
per-plugin staging that commits a plugin's entries together.  How an entry is obtained (built,
downloaded, prepared) is :mod:`imgtrans.data.catalog`'s job; the plugin host needs only this."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..util.errors import DuplicateComponentError, UnknownNameError


@dataclass(frozen=True)
class DatasetEntry:
    """A named dataset and how to obtain it (see the module docstring)."""

    name: str
    description: str
    paired: bool = True
    domains: tuple[str, str] = ("A", "B")
    layout: str = "aligned"                       # the dataset format its files are in
    build: Callable[..., Any] | None = None
    url: str | None = None
    archive: str = ""                              # "tar.gz" or "zip", for display
    prepare: Callable[..., Any] | None = None
    prepare_help: str = ""                         # how to get the files ``prepare`` needs
    splits: dict[str, int] = field(default_factory=dict)  # folder -> expected image count
    tolerance: float = 0.0                         # accepted shortfall of the counts (0.1 = 10 %)
    licence: str = ""
    notes: str = ""
    size_mb: float | None = None
    aliases: tuple[str, ...] = ()                  # other names that find this entry (one cache folder)
    plugin: str = ""

    @property
    def how(self) -> str:
        return "built locally" if self.build else "download" if self.url else "prepare from your files"


class DatasetCatalog:
    def __init__(self) -> None:
        self._entries: dict[str, DatasetEntry] = {}
        self._aliases: dict[str, str] = {}  # alias -> entry name

    def add(self, entry: DatasetEntry) -> None:
        for name in (entry.name, *entry.aliases):
            if name in self:
                taken = self.get(name)
                raise DuplicateComponentError(
                    f"dataset {name!r} is registered by plugin {taken.plugin!r} and again by plugin {entry.plugin!r}")
        self._entries[entry.name] = entry
        self._aliases.update({alias: entry.name for alias in entry.aliases})

    def get(self, name: str) -> DatasetEntry:
        try:
            return self._entries[self._aliases.get(name, name)]
        except KeyError:
            raise UnknownNameError("dataset", name, [*self._entries, *self._aliases]) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries or name in self._aliases

    def for_plugin(self, plugin: str) -> "PluginCatalog":
        return PluginCatalog(self, plugin)


class PluginCatalog:
    """What a plugin's ``register_datasets`` hook receives: registrations are committed together."""

    def __init__(self, catalog: DatasetCatalog, plugin: str):
        self._catalog, self.plugin, self._staged = catalog, plugin, []

    def add(self, name: str, description: str, **fields: Any) -> None:
        self._staged.append(DatasetEntry(name=name, description=description, plugin=self.plugin, **fields))

    def validate(self) -> None:
        """Raise if committing would fail, leaving the catalog untouched."""
        names = [name for entry in self._staged for name in (entry.name, *entry.aliases)]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise DuplicateComponentError(f"plugin {self.plugin!r} registers dataset {twice[0]!r} twice")
        for entry in self._staged:
            if any(name in self._catalog for name in (entry.name, *entry.aliases)):
                self._catalog.add(entry)  # raises, naming both plugins

    def commit(self) -> None:
        self.validate()
        for entry in self._staged:
            self._catalog.add(entry)
