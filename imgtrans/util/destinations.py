"""Can an output go there?  Checked before any work starts, so that a long job never computes
everything and then fails at its first write (translate's OUTPUT, eval's ``--out`` and
``--contact-sheet``).  The check creates nothing."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import ImgtransError


def _check_folder(folder: Path, shown: str) -> None:
    """``folder`` exists as a folder we may write into, or can be created as one."""
    if folder.exists() and not folder.is_dir():
        raise ImgtransError(f"cannot write {shown}: {folder} exists and is not a folder")
    base = folder.absolute()
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise ImgtransError(f"cannot write {shown}: {base} is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ImgtransError(f"cannot write {shown}: no permission to write in {base}")


def check_writable_folder(path: str | Path, what: str) -> None:
    """``path`` is, or can be created as, a folder this process may write into (``what`` names it
    in the message, e.g. ``OUTPUT`` or ``--out``)."""
    path = Path(path)
    _check_folder(path, f"{what} {path}")


def check_writable_file(path: str | Path, what: str) -> None:
    """``path`` can be written as a file: created, or replaced atomically (so only its folder matters)."""
    path = Path(path)
    if path.is_dir():
        raise ImgtransError(f"cannot write {what} {path}: it is a folder, not a file")
    _check_folder(path.parent, f"{what} {path}")
