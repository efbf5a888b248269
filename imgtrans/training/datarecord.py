"""Which data a run trained on, so that ``--resume`` never continues on other data unnoticed.

``data.source`` may be a relative folder (``--data pairs``): resumed from another working
directory it names another folder, and a folder whose files were replaced keeps its name. So
every checkpoint records the folder it resolved to and a fingerprint of what the training split
holds (file names and sizes: cheap, one ``stat`` per file, no reading), and a resume compares.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from ..util.errors import RunError
from ..util.terminal import warn_stderr

RECORD_KEY = "data"


def fingerprint(folder: Path, exclude: Path | None = None) -> dict[str, Any]:
    """Count, total size and a digest of the relative names and sizes of the files under
    ``folder`` (hidden entries and ``exclude``, e.g. a run directory inside it, left out)."""
    h = hashlib.blake2b(digest_size=8)
    files = size = 0
    skip = os.path.realpath(exclude) if exclude is not None else None
    entries: list[tuple[str, int]] = []
    for top, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and os.path.realpath(os.path.join(top, d)) != skip)
        for name in names:
            if name.startswith("."):
                continue
            path = os.path.join(top, name)
            try:
                st = os.stat(path)
            except OSError:  # a dangling link: not data
                continue
            entries.append((os.path.relpath(path, folder).replace(os.sep, "/"), st.st_size))
    for rel, n in sorted(entries):
        h.update(f"{rel}\0{n}\n".encode())
        files += 1
        size += n
    return {"files": files, "bytes": size, "digest": h.hexdigest()}


def data_record(root: Path, split: str, run_dir: Path | None = None) -> dict[str, Any]:
    """What to store in each checkpoint: the absolute data folder and its training split's fingerprint."""
    root = Path(root).expanduser().resolve()
    folder = root / split if (root / split).is_dir() else root
    return {"root": str(root), "split": split, **fingerprint(folder, exclude=run_dir)}


def _describe(record: dict[str, Any]) -> str:
    return f"{record['root']} ({record['files']} files, {record['bytes']} bytes, digest {record['digest']})"


def check_same_data(saved: dict[str, Any] | None, now: dict[str, Any], run_dir: Path) -> None:
    """Refuse to resume ``run_dir`` on data whose fingerprint differs from the one its checkpoint
    recorded; the same files in another place (a moved or copied folder) are only warned about.
    Checkpoints of older versions recorded nothing: nothing to compare then."""
    if not isinstance(saved, dict) or not {"root", "files", "bytes", "digest"} <= set(saved):
        return
    same_files = all(saved[k] == now[k] for k in ("files", "bytes", "digest"))
    if not same_files:
        raise RunError(f"cannot resume {run_dir}: it was trained on {_describe(saved)}, but its data.source now "
                       f"gives {_describe(now)}; resume from the directory the run was started in, or restore the data")
    if saved["root"] != now["root"]:
        warn_stderr(f"{run_dir} was trained on {saved['root']}; resuming on {now['root']}, which holds the same "
                    f"file names and sizes ({now['files']} files)")
