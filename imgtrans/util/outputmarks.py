"""Marks that say "imgtrans wrote this", so that ``--overwrite`` replaces only our own outputs.

A name is not proof: a user's folder may well hold a ``config.toml``, a ``metrics.jsonl`` and
photos under ``test/``.  So every folder imgtrans creates for a job (a run directory, eval's
``--out`` and ``--report``) gets a small JSON file, :data:`MARK_NAME`, naming the job that wrote
it and a random id; a single PNG that eval writes (``--contact-sheet``) carries the same claim
in a PNG text chunk.  ``--overwrite`` then requires the mark of the matching kind, and the
folder's other entries must still be what that job writes.
"""
from __future__ import annotations

import json
import os
import stat
import uuid
from pathlib import Path

from .fileio import atomic_path

MARK_NAME = ".imgtrans-output.json"
#: the PNG text chunk key of a single file imgtrans wrote (a contact sheet)
PNG_KEY = "imgtrans-output"
#: the kinds of output a mark names
KINDS = ("train-run", "eval-out", "eval-report", "eval-contact-sheet")
_MAX_MARK_BYTES = 4096


def write_mark(folder: Path, kind: str) -> str:
    """Claim ``folder`` for a job of ``kind``; returns the new id."""
    if kind not in KINDS:
        raise ValueError(f"unknown output kind {kind!r}")
    ident = uuid.uuid4().hex
    with atomic_path(Path(folder) / MARK_NAME) as tmp:
        tmp.write_text(json.dumps({"written_by": "imgtrans", "kind": kind, "id": ident}) + "\n", encoding="utf-8")
    return ident


def read_mark(folder: Path) -> str | None:
    """The kind of job that claimed ``folder``, or None (no mark, or anything but a small regular
    file holding a mark: a link or a FIFO is never followed or read)."""
    path = Path(folder) / MARK_NAME
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_MARK_BYTES:
        return None
    try:
        mark = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(mark, dict) or mark.get("written_by") != "imgtrans" or mark.get("kind") not in KINDS:
        return None
    return mark["kind"]


def png_mark(path: Path) -> str | None:
    """The kind that an imgtrans-written PNG names in its text chunk, or None for any other file."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return None
    try:
        with Image.open(path) as img:
            kind = img.format == "PNG" and getattr(img, "text", {}).get(PNG_KEY)
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    return kind if kind in KINDS else None
