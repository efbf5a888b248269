"""Where eval may write: translate's rules, for ``--out``, ``--contact-sheet`` and ``--report``.

Never an input (the dataset folder, in or around it) and never the model file; an existing output
only with ``overwrite``, and only one that eval itself wrote (its mark, :mod:`imgtrans.util.outputmarks`,
and nothing in it that eval does not write).  Checked before any work (and again once a catalogue
dataset's folder is known), so a refusal costs nothing and deletes nothing.
"""
from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from ..util.destinations import check_writable_file, check_writable_folder
from ..util.errors import ImgtransError
from ..util.fileio import is_temp_name
from ..util.outputmarks import MARK_NAME, png_mark, read_mark, write_mark

#: what each folder kind holds besides its mark (and temporary files of a killed write)
EVAL_FOLDERS: dict[str, re.Pattern[str]] = {
    "eval-out": re.compile(r"^[^.].*\.png$"),
    "eval-report": re.compile(r"^(index\.html|(best|worst)_\d+\.png)$"),
}
_OPTIONS = {"eval-out": "--out", "eval-report": "--report"}


def foreign_entry(folder: Path, kind: str) -> str | None:
    """Why ``folder`` is not wholly an output of kind ``kind`` (its first foreign entry), or None."""
    if read_mark(folder) != kind:
        return "imgtrans eval did not write it (it carries no mark of eval's)"
    pattern = EVAL_FOLDERS[kind]
    for entry in folder.iterdir():
        name = entry.name
        if entry.is_symlink() or not entry.is_file():
            return f"it holds {name!r}, which eval did not write"
        if name != MARK_NAME and not is_temp_name(name) and not pattern.match(name):
            return f"it holds {name!r}, which eval did not write"
    return None


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _overlap(out: Path, protected: Sequence[Path], what: str) -> None:
    target = _real(out)
    for p in protected:
        real = _real(p)
        if target == real or real in target.parents or target in real.parents:
            kind = "the dataset" if real.is_dir() else "the model file" if real.suffix == ".safetensors" else "an input"
            raise ImgtransError(f"refusing to write {what} {out}: it would overwrite or mix with {kind} {p}; "
                                "choose an output outside the data and the model")


def _check_folder(folder: Path, kind: str, overwrite: bool, protected: Sequence[Path]) -> None:
    what = _OPTIONS[kind]
    check_writable_folder(folder, what)
    _overlap(folder, protected, what)
    if not folder.is_dir() or not any(folder.iterdir()):
        return
    if not overwrite:
        raise ImgtransError(f"{what} {folder} already holds files; pass --overwrite to replace an earlier eval's "
                            "output, or choose another folder")
    reason = foreign_entry(folder, kind)
    if reason:
        raise ImgtransError(f"refusing to --overwrite {what} {folder}: {reason}; only a folder eval wrote is "
                            "replaced: choose another folder")


def check_eval_outputs(out_dir: str | Path | None, contact_sheet: str | Path | None,
                       report: str | Path | None = None, *, overwrite: bool = False,
                       protected: Sequence[str | Path] = ()) -> None:
    """Refuse, before anything is computed, an output that cannot be written, that is or overlaps a
    ``protected`` path (the dataset folder, the model file), or that exists and is not eval's own
    (or is, without ``overwrite``)."""
    guarded = [Path(p) for p in protected if p is not None and (Path(p).exists() or Path(p).is_symlink())]
    if out_dir is not None:
        _check_folder(Path(out_dir), "eval-out", overwrite, guarded)
    if report is not None:
        _check_folder(Path(report), "eval-report", overwrite, guarded)
    if contact_sheet is not None:
        sheet = Path(contact_sheet)
        check_writable_file(sheet, "--contact-sheet")
        _overlap(sheet, guarded, "--contact-sheet")
        if sheet.exists() or sheet.is_symlink():
            if not overwrite:
                raise ImgtransError(f"--contact-sheet {sheet} exists; pass --overwrite to replace an earlier eval's "
                                    "sheet, or choose another file")
            if png_mark(sheet) != "eval-contact-sheet":
                raise ImgtransError(f"refusing to --overwrite --contact-sheet {sheet}: imgtrans eval did not write it; "
                                    "choose another file")


def claim_eval_folder(folder: str | Path, kind: str) -> Path:
    """Empty an earlier eval's ``folder`` (already checked by :func:`check_eval_outputs`) or create it,
    and mark it as eval's; returns it."""
    folder = Path(folder)
    if folder.is_dir():
        for entry in folder.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)  # pragma: no cover - a checked folder holds none
            else:
                entry.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    write_mark(folder, kind)
    return folder
