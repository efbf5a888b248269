"""``imgtrans data make TASK PHOTOS OUT``: a paired dataset made from any folder of photos.

Every photo (found recursively, sorted) is centre-cropped to a square, resized to ``size`` and
becomes B; the task's pair maker derives A from it; the pair is written side by side (A | B) in
the ``aligned`` layout, ``OUT/{train,val,test}/NAME.png``, with ``OUT/make.json`` recording how.

**Reproducible.**  Each photo's random draws and its split come from hashes of the seed and its
path relative to PHOTOS, never from the order of processing: the same seed, photos and
parameters give the same files, whatever the number of threads; adding a photo changes no other
photo's pixels.  Splits: photos are ranked by their hash; the first ``round(n * test)`` go to
test, the next ``round(n * val)`` to val, the rest to train (a split with a fraction > 0 gets at
least one photo when there are enough).

**Safe.**  The dataset is written into a hidden temporary folder beside OUT and renamed into
place only when complete, so an interrupted run never leaves a dataset that looks whole (a killed
one leaves only a hidden ``.OUT.partial-*`` folder, removed by the next run).  An existing,
non-empty OUT is replaced only with ``overwrite`` and only if ``data make`` wrote it.  Unreadable
photos are skipped with one warning each and counted, as in training.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..core.registry import check_arguments, plugin_code
from ..util.cachelock import cache_lock
from ..util.errors import ConfigError, DataError
from ..util.terminal import StderrBar, warn_stderr
from .images import IMAGE_EXTENSIONS, is_image, load_image

SPLITS = ("train", "val", "test")
MARKER = "make.json"
MADE_BY = "imgtrans data make"
IMAGE_FORMATS = ("png", "jpg")
#: the largest --size: a pair is 2 * MAX_SIZE pixels wide
MAX_SIZE = 8192
#: at most this many photos in flight per worker thread (bounds memory, keeps Ctrl-C prompt)
QUEUE_PER_WORKER = 4


@dataclass
class MakeReport:
    """What ``make_dataset`` wrote: ``counts`` per split, and the photos it ``skipped`` (reasons)."""

    out: Path
    task: str
    parameters: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def parse_split(text: str) -> tuple[float, float, float]:
    """``"0.8,0.1,0.1"`` -> train, val and test fractions (they must add up to 1)."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or any(not 0 <= v <= 1 for v in values) or abs(sum(values) - 1) > 1e-6 or values[0] == 0:
        raise ConfigError(f"--split must be three fractions TRAIN,VAL,TEST adding up to 1 with TRAIN > 0 "
                          f"(for example 0.8,0.1,0.1), not {text!r}")
    return values  # type: ignore[return-value]


def task_parameters(task: str, settings: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The parameters for ``task`` from ``--set`` sections (``{"edges": {"sigma": 2}}``); a section
    naming another task is an error, since it would otherwise be silently ignored."""
    other = sorted(set(settings) - {task})
    if other:
        raise ConfigError(f"--set {other[0]}.NAME does not apply: the task is {task!r}, whose parameters are "
                          f"set as {task}.NAME=VALUE")
    return dict(settings.get(task, {}))


def build_maker(registry: Any, task: str, parameters: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The pair maker for ``task`` and its full parameters (defaults filled in), after checking
    names, types and constraints: one-line errors such as ``edges.sigma must be a number >= 0``."""
    from ..util.typecheck import argument_rules, check_values

    component = registry.get("pair_maker", task)
    check_arguments(component, dict(parameters))
    defaults = component.arguments()
    rules = argument_rules(component.factory, defaults, f"pair maker {task!r}")
    values = check_values(dict(parameters), rules, task)
    maker = registry.create("pair_maker", task, **values)
    return maker, {**defaults, **values}


def find_photos(folder: Path) -> list[Path]:
    """Image files under ``folder`` (hidden files and folders skipped), sorted by relative path."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root) / f for f in files if is_image(Path(f))]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _digest(seed: int, key: str, name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}\0{key}\0{name}".encode()).digest()[:8], "big")


def assign_splits(names: list[str], fractions: tuple[float, float, float], seed: int) -> dict[str, str]:
    """Split of each name: ranked by a hash of (seed, name), cut into test, val and train."""
    ranked = sorted(names, key=lambda n: (_digest(seed, "split", n), n))
    n = len(ranked)
    counts = {}
    for split, fraction in zip(("test", "val"), fractions[2:0:-1]):
        k = round(n * fraction)
        counts[split] = max(k, 1) if fraction > 0 and n >= 3 else k
    if counts["test"] + counts["val"] >= n:  # train keeps at least one photo
        counts["val"] = max(0, n - 1 - counts["test"])
        counts["test"] = min(counts["test"], n - 1)
    order = ["test"] * counts["test"] + ["val"] * counts["val"]
    return {name: order[i] if i < len(order) else "train" for i, name in enumerate(ranked)}


def output_names(photos: Path, paths: list[Path]) -> dict[Path, str]:
    """A flat, unique output stem per photo: its relative path with ``/`` as ``__``; photos whose
    stems collide (``x.jpg`` and ``x.png``) keep their extension in the name (``x_jpg``)."""
    stems = {p: p.relative_to(photos).with_suffix("").as_posix().replace("/", "__") for p in paths}
    seen: dict[str, int] = {}
    for stem in stems.values():
        seen[stem] = seen.get(stem, 0) + 1
    return {p: (s if seen[s] == 1 else f"{s}_{p.suffix.lower().lstrip('.')}") for p, s in stems.items()}


def square(pixels: np.ndarray, size: int) -> np.ndarray:
    """Centre crop to a square, then resize to ``size`` (Lanczos): B as every pair stores it."""
    h, w = pixels.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    img = Image.fromarray(pixels[top:top + side, left:left + side])
    if side != size:
        img = img.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(img)


def check_out(out: Path, photos: Path, overwrite: bool) -> None:
    """Refuse an OUT that overlaps PHOTOS, or that holds anything ``overwrite`` may not replace."""
    out_r, photos_r = out.resolve(), photos.resolve()
    if out_r == photos_r or photos_r in out_r.parents or out_r in photos_r.parents:
        raise ConfigError(f"{out} and {photos} overlap; write the dataset outside the photo folder")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ConfigError(f"{out} exists and is not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        raise ConfigError(f"{out} exists and is not empty; choose another folder or pass --overwrite")
    if _foreign(out):
        raise ConfigError(f"refusing to --overwrite {out}: {_foreign(out)}; only a folder written by "
                          f"`{MADE_BY}` is replaced")


def _foreign(out: Path) -> str | None:
    marker = out / MARKER
    try:
        made_by = json.loads(marker.read_text(encoding="utf-8")).get("made_by")
    except (OSError, ValueError, AttributeError):
        made_by = None
    if made_by != MADE_BY:
        return f"it holds no {MARKER} of {MADE_BY}"
    extra = sorted(p.name for p in out.iterdir() if p.name != MARKER and not (p.name in SPLITS and p.is_dir()))
    return f"it holds {extra[0]}, which {MADE_BY} does not write" if extra else None


def _remove_stale(out: Path) -> None:
    """Hidden partial folders that a killed run of ``data make`` left beside ``out``."""
    for stale in out.parent.glob(f".{out.name}.partial-*"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)


def make_dataset(task: str, photos: str | Path, out: str | Path, *, parameters: Mapping[str, Any] | None = None,
                 seed: int = 0, split: tuple[float, float, float] = (0.8, 0.1, 0.1), size: int = 256,
                 image_format: str = "png", workers: int | None = None, overwrite: bool = False,
                 registry: Any = None, progress: bool = True,
                 warn: Callable[[str], None] | None = None) -> MakeReport:
    """Write the ``task`` dataset made from the photos under ``photos`` into ``out``; see the module
    docstring for the guarantees.  ``parameters`` are the task's (``{"sigma": 2}``)."""
    if registry is None:
        from ..core.plugin_host import get_host

        registry = get_host().registry
    # absolute, so that OUT = "." has a parent to put the temporary folder in
    photos, out, warn = Path(os.path.abspath(photos)), Path(os.path.abspath(out)), warn or warn_stderr
    if image_format not in IMAGE_FORMATS:
        raise ConfigError(f"image format must be one of {', '.join(IMAGE_FORMATS)}, not {image_format!r}")
    if not isinstance(size, int) or size < 8:
        raise ConfigError(f"--size must be a whole number of pixels >= 8, not {size!r}")
    if size > MAX_SIZE:  # checked before anything is allocated (100000 ended in a MemoryError traceback)
        raise ConfigError(f"--size {size} is too large: at most {MAX_SIZE} (a pair of {size}px photos takes "
                          f"{4 * size * size * 3 / 2**30:.1f} GB while it is made, per worker)")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"--seed must be a whole number, not {seed!r}")
    maker, params = build_maker(registry, task, parameters or {})
    plugin = registry.get("pair_maker", task).plugin
    if not photos.is_dir():
        raise DataError(f"{photos} is not a folder of photos")
    check_out(out, photos, overwrite)
    paths = find_photos(photos)
    if not paths:
        raise DataError(f"no images found under {photos} (files ending in {', '.join(sorted(IMAGE_EXTENSIONS))})")
    names = output_names(photos, paths)
    rel = {p: p.relative_to(photos).as_posix() for p in paths}
    splits = assign_splits([rel[p] for p in paths], split, seed)
    report = MakeReport(out, task, params)

    def one(path: Path) -> tuple[str, str | None]:
        """Make and write one pair; (split, None) or (split, the reason it was skipped)."""
        where = splits[rel[path]]
        try:
            photo = square(load_image(path, 3), size)
        except DataError as exc:
            return where, str(exc)
        rng = np.random.default_rng(_digest(seed, "pixels", rel[path]))
        with plugin_code(plugin, f"pair maker {task!r} on {path}"):
            made = np.asarray(maker(photo.copy(), rng))
        if made.shape != photo.shape or made.dtype != np.uint8:
            raise DataError(f"pair maker {task!r} returned {made.dtype} {made.shape} for a {photo.shape} photo; "
                            "it must return uint8 pixels of the photo's shape")
        pair = Image.fromarray(np.concatenate([made, photo], axis=1))
        target = tmp / where / f"{names[path]}.{image_format}"
        if image_format == "jpg":
            pair.save(target, "JPEG", quality=95, subsampling=0)
        else:
            pair.save(target, "PNG")
        return where, None

    out.parent.mkdir(parents=True, exist_ok=True)
    with cache_lock(out, wait=False, what="imgtrans data make"):  # a second run on OUT is refused, not mixed in
        _remove_stale(out)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
        try:
            for name in SPLITS:
                (tmp / name).mkdir()
            threads = max(1, workers if workers is not None else min(8, os.cpu_count() or 1))
            with StderrBar(progress, f"making {task} pairs", total=len(paths)) as bar:
                with closing(_run(one, paths, threads)) as results:  # closed (threads stopped) on any error
                    for where, problem in results:
                        if problem is None:
                            report.counts[where] = report.counts.get(where, 0) + 1
                        else:
                            report.skipped.append(problem)
                            warn(f"skipping {problem}")
                        bar.advance()
            if not report.counts:
                raise DataError(f"none of the {len(paths)} images under {photos} could be read")
            for name in SPLITS:
                if not report.counts.get(name):
                    (tmp / name).rmdir()
            record = {"made_by": MADE_BY, "task": task, "parameters": params, "seed": seed, "size": size,
                      "split": dict(zip(SPLITS, split)), "image_format": image_format, "source": str(photos.resolve()),
                      "counts": {s: report.counts.get(s, 0) for s in SPLITS}, "skipped": len(report.skipped),
                      "layout": "aligned: A (made by the task) | B (the photo)"}
            (tmp / MARKER).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
            _put_in_place(tmp, out, photos, overwrite)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return report


def _run(one: Callable[[Path], Any], paths: list[Path], threads: int) -> Iterator[Any]:
    """``one`` over ``paths`` in order, on ``threads`` threads with a bounded queue; Ctrl-C cancels
    the photos not yet started instead of waiting for every one of them."""
    if threads == 1:
        yield from map(one, paths)
        return
    pool = ThreadPoolExecutor(threads, thread_name_prefix="imgtrans-make")
    try:
        pending = []
        queue_limit = threads * QUEUE_PER_WORKER
        for path in paths:
            pending.append(pool.submit(one, path))
            if len(pending) >= queue_limit:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _put_in_place(tmp: Path, out: Path, photos: Path, overwrite: bool) -> None:
    """Rename the finished dataset to ``out``; an old one (checked again: it may have changed
    meanwhile) is moved aside first and deleted only once the new one is in place."""
    check_out(out, photos, overwrite)
    old = None
    if out.is_dir():
        if any(out.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / out.name)
        else:
            out.rmdir()
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
