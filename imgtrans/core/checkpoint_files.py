"""The files of a run's training checkpoints: ``checkpoints/step_<step>.safetensors``, the newest
``keep`` of them kept, and ``last.safetensors``, the same bytes as the newest (a hard link where
the file system allows, else a copy).  What the files hold: :mod:`imgtrans.training.checkpoints`.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from ..util.fileio import atomic_path

LAST = "last.safetensors"
_STEP_FILE = re.compile(r"^step_(\d+)\.safetensors$")


def step_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:08d}.safetensors"


def step_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of the step checkpoints, oldest first."""
    folder = Path(run_dir) / "checkpoints"
    found = []
    if folder.is_dir():
        for path in folder.iterdir():
            m = _STEP_FILE.match(path.name)
            if m:
                found.append((int(m.group(1)), path))
    return sorted(found)


def publish(path: Path, keep: int) -> None:
    """Make ``path`` (a new step checkpoint) ``last.safetensors`` too, then keep only the newest ``keep``."""
    last = path.parent / LAST
    with atomic_path(last) as tmp:
        tmp.unlink()
        try:
            os.link(path, tmp)  # same bytes, no second write
        except OSError:
            shutil.copyfile(path, tmp)
    for _, old in step_checkpoints(path.parent.parent)[:-keep]:
        old.unlink(missing_ok=True)
