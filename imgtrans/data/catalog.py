"""Named datasets, registered by plugins, and resolution of ``--data NAME|PATH``.

An entry is obtained in one of three ways, always into ``$IMGTRANS_HOME/datasets/NAME`` through
a temporary folder and an atomic rename (an interrupted build, download or extraction never
leaves half a dataset behind):

* ``build(dest)``: made locally from installed data (``basemap``);
* ``url``: downloaded with :func:`imgtrans.util.download.fetch` (resumable; ``IMGTRANS_DATA_MIRROR``
  replaces the base URL), extracted safely, and verified by its structure (``splits``: expected
  image counts per folder), because the public archives publish no checksums;
* ``prepare(source, dest)``: converted from files the user downloaded themselves (datasets whose
  licence forbids redistribution, like Cityscapes): ``imgtrans data prepare NAME --from DIR``.
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from ..core.dataset_catalog import DatasetCatalog, DatasetEntry
from ..util.errors import DataError
from ..util.paths import datasets_dir, home

MIRROR_ENV = "IMGTRANS_DATA_MIRROR"
COMPLETE = ".complete"


def verify_structure(root: Path, expected: dict[str, int], *, tolerance: float = 0.0) -> None:
    """Check that each folder in ``expected`` (relative to ``root``, e.g. ``"train"``, ``"testA"``)
    exists and directly holds at least ``count * (1 - tolerance)`` images (what
    :func:`imgtrans.data.images.list_images` lists, so hidden files such as macOS ``._x.png``
    never count).  Extra folders and files are fine.

    Raises :class:`DataError` listing every problem, e.g.
    ``"... train: 398 images, expected 400; val: missing; ..."``.
    """
    from .images import list_images  # imports torch, which listing datasets must not

    if not 0.0 <= tolerance < 1.0:
        raise ValueError(f"tolerance must be in [0, 1), got {tolerance!r}")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset folder {root} does not exist; download or build the dataset again")
    problems = []
    for rel, want in expected.items():
        folder = root / rel
        if not folder.is_dir():
            problems.append(f"{rel}: missing")
            continue
        got = len(list_images(folder))
        least = math.ceil(want * (1.0 - tolerance) - 1e-9)
        if got < least:
            bound = f" (at least {least})" if least != want else ""
            problems.append(f"{rel}: {got} images, expected {want}{bound}")
    if problems:
        raise DataError(f"dataset at {root} does not have the expected structure: {'; '.join(problems)}; "
                        "delete it and download it again")


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
    from ..util.archive import ArchiveError, RefusedArchive, safe_extract
    from ..util.cachelock import cache_lock
    from ..util.download import fetch, mirrored
    from ..util.download_limits import approx_limit

    assert entry.url is not None
    target = dataset_path(entry.name)
    url = mirrored(entry.url, mirror or os.environ.get(MIRROR_ENV))
    archive = home() / "downloads" / (Path(urlparse(entry.url).path).name or f"{entry.name}.archive")
    with cache_lock(target):
        if (target / COMPLETE).exists():  # made by another process while we waited
            return target
        if progress:
            progress(f"downloading dataset {entry.name!r} from {url}")
        fetch(url, archive, description=entry.name, max_bytes=approx_limit(entry.size_mb),
              advice=f"or set {MIRROR_ENV} to a mirror (a URL or folder holding {archive.name}); datasets built "
                     "locally need no download: --data basemap (paired) or --data basemap_unpaired")
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
            verify_structure(dest, {split: 1 for split in entry.splits})
    return target
