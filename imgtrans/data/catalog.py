"""Named datasets, registered by plugins, and resolution of ``--data NAME|PATH``.

An entry is obtained in one of three ways, always into ``$IMGTRANS_HOME/datasets/NAME`` through
a temporary folder and an atomic rename (an interrupted build, download or extraction never
leaves half a dataset behind):

* ``build(dest)``: made locally from installed data (``basemap``);
* ``url``: downloaded with :func:`imgtrans.download.fetch` (resumable; ``IMGTRANS_DATA_MIRROR``
  replaces the base URL), extracted safely, and verified by its structure (``splits``: expected
  image counts per folder), because the public archives publish no checksums;
* ``prepare(source, dest)``: converted from files the user downloaded themselves (datasets whose
  licence forbids redistribution, like Cityscapes): ``imgtrans data prepare NAME --from DIR``.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..errors import DataError, DuplicateComponentError, UnknownNameError
from ..paths import datasets_dir, home

MIRROR_ENV = "IMGTRANS_DATA_MIRROR"
COMPLETE = ".complete"


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


def dataset_path(name: str) -> Path:
    return datasets_dir() / name


def is_ready(name: str) -> bool:
    return (dataset_path(name) / COMPLETE).exists()


@contextmanager
def _staging(target: Path) -> Iterator[Path]:
    """A temporary folder next to ``target`` that becomes ``target`` only if the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        yield tmp / "data"
        (tmp / "data" / COMPLETE).write_text("ok\n")
        if target.exists():  # a stale, incomplete earlier attempt
            shutil.rmtree(target)
        (tmp / "data").rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def resolve_dataset(source: str | Path, catalog: DatasetCatalog, *, progress: Callable[[str], None] | None = None,
                    mirror: str | None = None) -> Path:
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
    if (target / COMPLETE).exists():
        return target
    if entry.build is not None:
        with _staging(target) as dest:
            if progress:
                progress(f"building dataset {entry.name!r} into {target} (once)")
            entry.build(dest, progress=progress)
        return target
    if entry.url is not None:
        return download_dataset(entry, mirror=mirror, progress=progress)
    raise DataError(f"dataset {entry.name!r} cannot be downloaded: {entry.prepare_help or entry.notes} "
                    f"Then run `imgtrans data prepare {entry.name} --from DIR`.")


def download_dataset(entry: DatasetEntry, *, mirror: str | None = None, keep_archive: bool = False,
                     progress: Callable[[str], None] | None = None) -> Path:
    """Download, safely extract and verify ``entry`` into the cache.

    One process at a time (``NAME.lock`` next to the dataset folder): a second one waits, then
    finds the dataset ready.  An archive that is refused (hostile, corrupt) or holds the wrong
    structure is deleted, so the next try downloads again instead of reusing it."""
    from ..cachelock import cache_lock
    from ..download import fetch, mirrored
    from ..download_limits import approx_limit
    from .archive import ArchiveError, RefusedArchive, safe_extract, verify_structure

    assert entry.url is not None
    target = dataset_path(entry.name)
    url = mirrored(entry.url, mirror or os.environ.get(MIRROR_ENV))
    archive = home() / "downloads" / (Path(urlparse(entry.url).path).name or f"{entry.name}.archive")
    with cache_lock(target):
        if (target / COMPLETE).exists():  # made by another process while we waited
            return target
        if progress:
            progress(f"downloading dataset {entry.name!r} from {url}")
        fetch(url, archive, description=entry.name, max_bytes=approx_limit(entry.size_mb))
        try:
            with _staging(target) as dest:
                safe_extract(archive, dest, strip_top=True)
                verify_structure(dest, entry.splits, tolerance=entry.tolerance)
        except ArchiveError as exc:
            if not isinstance(exc, RefusedArchive):
                raise  # the archive may be fine (disk full, permissions): keep it for the next try
            archive.unlink(missing_ok=True)
            raise RefusedArchive(f"{exc} (the downloaded copy {archive} was deleted)") from None
        except DataError as exc:  # the wrong structure: the archive is not the dataset
            archive.unlink(missing_ok=True)
            raise DataError(f"{exc} (the downloaded archive {archive} was deleted)") from None
        if not keep_archive:
            archive.unlink(missing_ok=True)
    return target


def prepare_dataset(entry: DatasetEntry, source: Path, *, progress: Callable[[str], None] | None = None) -> Path:
    """Build ``entry`` from files the user obtained themselves."""
    if entry.prepare is None:
        raise DataError(f"dataset {entry.name!r} needs no preparation: use it directly with --data {entry.name}")
    if not Path(source).is_dir():
        raise DataError(f"--from {source}: not a folder. {entry.prepare_help}")
    target = dataset_path(entry.name)
    with _staging(target) as dest:
        entry.prepare(Path(source), dest, progress=progress)
        if entry.splits:  # a user's own download may be partial: require every split, not the full counts
            from .archive import verify_structure

            verify_structure(dest, {split: 1 for split in entry.splits})
    return target
