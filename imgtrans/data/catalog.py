"""Named datasets, registered by plugins, and resolution of ``--data NAME|PATH``.

An entry either knows how to build itself locally (``build``) or, later, where to download
from.  Built datasets are written once into ``$IMGTRANS_HOME/datasets/NAME`` through a temporary
folder and an atomic rename, so an interrupted build never leaves half a dataset behind.
"""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError, DuplicateComponentError, UnknownNameError
from ..paths import datasets_dir


@dataclass(frozen=True)
class DatasetEntry:
    """A named dataset.  ``build(dest)`` writes it into the empty folder ``dest``."""

    name: str
    description: str
    paired: bool = True
    domains: tuple[str, str] = ("A", "B")
    build: Callable[..., Any] | None = None
    url: str | None = None
    licence: str = ""
    splits: dict[str, int] = field(default_factory=dict)
    plugin: str = ""


class DatasetCatalog:
    def __init__(self) -> None:
        self._entries: dict[str, DatasetEntry] = {}

    def add(self, entry: DatasetEntry) -> None:
        taken = self._entries.get(entry.name)
        if taken is not None:
            raise DuplicateComponentError(
                f"dataset {entry.name!r} is registered by plugin {taken.plugin!r} and again by plugin {entry.plugin!r}"
            )
        self._entries[entry.name] = entry

    def get(self, name: str) -> DatasetEntry:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError("dataset", name, self._entries) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def for_plugin(self, plugin: str) -> "PluginCatalog":
        return PluginCatalog(self, plugin)


class PluginCatalog:
    """What a plugin's ``register_datasets`` hook receives: registrations are committed together."""

    def __init__(self, catalog: DatasetCatalog, plugin: str):
        self._catalog, self.plugin, self._staged = catalog, plugin, []

    def add(self, name: str, description: str, **fields: Any) -> None:
        self._staged.append(DatasetEntry(name=name, description=description, plugin=self.plugin, **fields))

    def commit(self) -> None:
        for entry in self._staged:
            if entry.name in self._catalog:
                self._catalog.add(entry)  # raises, naming both plugins
        for entry in self._staged:
            self._catalog.add(entry)


def dataset_path(name: str) -> Path:
    return datasets_dir() / name


def resolve_dataset(source: str | Path, catalog: DatasetCatalog, *, progress: Callable[[str], None] | None = None) -> Path:
    """Turn ``--data`` into a folder: an existing path is used as is; a catalog name is built or
    fetched into the cache on first use and reused afterwards."""
    path = Path(source).expanduser()
    if path.exists():
        return path
    if str(source) not in catalog:
        raise DataError(
            f"--data {source!r} is neither an existing folder nor a known dataset. "
            f"Known datasets: {', '.join(catalog.names()) or '(none)'}"
        )
    entry = catalog.get(str(source))
    target = dataset_path(entry.name)
    if (target / ".complete").exists():
        return target
    if entry.build is None:
        raise DataError(f"dataset {entry.name!r} has no local builder; download support comes with `imgtrans data download`")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=target.parent))
    try:
        if progress:
            progress(f"building dataset {entry.name!r} into {target} (once)")
        entry.build(tmp / "data", progress=progress)
        (tmp / "data" / ".complete").write_text("ok\n")
        if target.exists():  # a stale, incomplete earlier attempt
            shutil.rmtree(target)
        (tmp / "data").rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
