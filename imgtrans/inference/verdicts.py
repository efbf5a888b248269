"""Remembered precision verdicts: whether a model file's outputs survive bf16/fp16, measured once.

``$IMGTRANS_HOME/precision_verdicts.json`` holds::

    {"version": 1,
     "verdicts": {KEY: {"precision": "fp32", "candidate": "bf16", "max": 14.0, "mean": 0.8, "model": PATH}},
     "files": {PATH: {"size": N, "mtime_ns": N, "sha256": HEX}}}

KEY names everything the measured error depends on: the model file's sha256, the direction, the
device kind (and CUDA device name), the candidate precision, the normalisation mode and the torch
version; a different file, device or torch build is probed afresh.  ``files`` remembers each model
file's sha256 by path, size and modification time, so a later run does not re-read a large file.

The file is a cache, never a source of truth: a corrupt or unreadable one is ignored with one
warning line (and replaced on the next write), a failed write warns and the run goes on.  It is
read only as a regular file of at most :data:`MAX_BYTES` (a link to ``/dev/zero`` or a FIFO is
ignored, not read), and it stays small: each write keeps the newest :data:`MAX_ENTRIES` verdicts
and files.  Writes
are atomic and serialised across processes (:func:`imgtrans.util.cachelock.cache_lock`).
"""
from __future__ import annotations

import json
import os
import stat as stat_mode
from pathlib import Path
from typing import Any

import torch

from ..util.paths import home
from ..util.terminal import warn_stderr

VERSION = 1
FILE_NAME = "precision_verdicts.json"
#: the largest cache file read (a verdict and a file entry take about 400 bytes together)
MAX_BYTES = 2 * 1024 * 1024
#: verdicts (and file digests) kept; the oldest go first
MAX_ENTRIES = 2000


def verdicts_path() -> Path:
    return home() / FILE_NAME


def _valid(data: Any) -> bool:
    return (isinstance(data, dict) and data.get("version") == VERSION
            and isinstance(data.get("verdicts"), dict) and isinstance(data.get("files"), dict)
            and all(isinstance(v, dict) and isinstance(v.get("precision"), str) for v in data["verdicts"].values())
            and all(isinstance(v, dict) for v in data["files"].values()))


def _empty() -> dict[str, Any]:
    return {"version": VERSION, "verdicts": {}, "files": {}}


def load(path: Path | None = None, *, quiet: bool = False) -> dict[str, Any]:
    """The stored verdicts; an empty store when the file is missing, and (with one warning line
    unless ``quiet``) when it is unreadable or corrupt."""
    path = path or verdicts_path()
    try:
        text = _read_capped(path)
    except FileNotFoundError:
        return _empty()
    except (OSError, UnicodeDecodeError) as exc:
        why = str(getattr(exc, "strerror", None) or exc)
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            why = f"not valid JSON ({exc.msg} at line {exc.lineno})"
        else:
            if _valid(data):
                return data
            why = "not a precision verdict file of this version"
    if not quiet:
        warn_stderr(f"ignoring the precision verdict cache {path}: {why}; models are probed again and the "
                    "file is rewritten")
    return _empty()


def _read_capped(path: Path) -> str:
    """The cache's text, refusing anything but a regular file of at most :data:`MAX_BYTES`; opened
    without blocking, so a FIFO put in its place cannot hang the run."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat_mode.S_ISREG(info.st_mode):
            raise OSError("not a regular file")
        data = fh.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise OSError(f"larger than {MAX_BYTES // (1024 * 1024)} MB")
    return data.decode("utf-8")


def _trim(store: dict[str, Any]) -> None:
    """Keep the newest :data:`MAX_ENTRIES` verdicts and file digests (dicts keep insertion order)."""
    for section in ("verdicts", "files"):
        entries = store[section]
        for key in list(entries)[:max(0, len(entries) - MAX_ENTRIES)]:
            del entries[key]


def _update(change) -> None:
    """Apply ``change(store)`` to the stored verdicts and write them back atomically (warning, not
    failing, when the cache cannot be written)."""
    from ..util.cachelock import cache_lock
    from ..util.errors import ImgtransError
    from ..util.fileio import atomic_path

    path = verdicts_path()
    try:
        with cache_lock(path):
            store = load(path, quiet=True)
            change(store)
            _trim(store)
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps(store, indent=1), encoding="utf-8")  # insertion order: age
    except (OSError, ImgtransError) as exc:
        warn_stderr(f"cannot write the precision verdict cache {path}: {getattr(exc, 'strerror', None) or exc}; "
                    "the next run probes again")


def file_digest(path: str | Path, store: dict[str, Any] | None = None) -> str | None:
    """The sha256 of a model file, from the store when its path, size and modification time are
    unchanged (else hashed and remembered); ``None`` when ``path`` is not a readable file."""
    from ..util.download import sha256_file

    try:
        resolved = Path(path).resolve()
        stat = resolved.stat()
    except (OSError, RuntimeError, ValueError):
        return None
    if not resolved.is_file():
        return None
    store = store if store is not None else load()
    known = store["files"].get(str(resolved))
    if isinstance(known, dict) and known.get("size") == stat.st_size and known.get("mtime_ns") == stat.st_mtime_ns \
            and isinstance(known.get("sha256"), str):
        return known["sha256"]
    try:
        digest = sha256_file(resolved)
    except OSError:
        return None
    entry = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
    store["files"][str(resolved)] = entry
    _update(lambda s: s["files"].__setitem__(str(resolved), entry))
    return digest


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        try:
            return f"cuda:{torch.cuda.get_device_name(device)}"
        except Exception:  # pragma: no cover - a CUDA device that will not say its name
            return "cuda"
    return device.type


def verdict_key(digest: str, direction: str, device: torch.device, candidate: str, norm_stats: str) -> str:
    return "|".join((digest, direction, device_name(device), candidate, norm_stats, f"torch-{torch.__version__}"))


def lookup(key: str, store: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The remembered verdict for ``key``, or ``None``."""
    verdict = (store if store is not None else load())["verdicts"].get(key)
    return verdict if isinstance(verdict, dict) and verdict.get("precision") in ("fp32", "bf16", "fp16") else None


def record(key: str, verdict: dict[str, Any]) -> None:
    def change(store: dict[str, Any]) -> None:
        store["verdicts"].pop(key, None)  # re-inserted: the newest
        store["verdicts"][key] = verdict

    _update(change)

