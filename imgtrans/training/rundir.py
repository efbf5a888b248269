"""The run directory's safety rules: one training process per run directory, what ``--overwrite``
may delete, its creation (only once the configuration has been checked), stale temporary files,
and what to tell a user whose run stopped.

One training process per run directory (:class:`RunLock`): an exclusive ``flock`` on
``RUN/train.lock``.  Two runs writing one directory mix their checkpoints, metrics and config
without either noticing, so the second one refuses instead, naming the first one's PID (written
into the lock file). ``flock`` locks belong to the open file, so the kernel releases them when
the holder exits, however it exits: a killed run never leaves a stale lock, and the file itself
may stay.

``--overwrite`` replaces only a directory that ``imgtrans train`` wrote: one carrying the run's
mark (:mod:`imgtrans.util.outputmarks`; names alone prove nothing, a user's folder may hold a
``config.toml`` and photos under ``test/``) and nothing else but the files listed in
:data:`RUN_FILES` and :data:`RUN_FOLDERS`, plus what ``imgtrans eval`` wrote there (``--out RUN/test``
and ``--contact-sheet RUN/sheet.png``, as ``make demo`` does; each carries eval's mark). It never
removes a directory that is, holds or lies inside the training data.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..core.checkpoint_files import LAST, step_checkpoints
from ..metrics.eval_outputs import EVAL_FOLDERS, foreign_entry
from ..util.errors import ConfigError, RunError
from ..util.fileio import atomic_path, is_temp_name, remove_temp_files
from ..util.outputmarks import MARK_NAME, png_mark, read_mark, write_mark
from .checkpoints import saved_step

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

try:
    import fcntl
except ImportError:  # not POSIX: runs are not locked there
    fcntl = None  # type: ignore[assignment]


#: the lock file of a run, held by its one training process (:class:`RunLock`)
LOCK_NAME = "train.lock"
#: the preview columns' captions, written next to the grids (``real_A | fake_B | rec_A | ...``)
COLUMNS_FILE = "columns.txt"
#: files that imgtrans writes at the top of a run directory
RUN_FILES = {"config.toml", "metrics.jsonl", "model.safetensors", "model_best.safetensors", "index.html",
             "loss_curve.png", MARK_NAME, LOCK_NAME}
#: folders that imgtrans writes, and the names it writes in each
RUN_FOLDERS: dict[str, re.Pattern[str]] = {
    "checkpoints": re.compile(r"^(step_\d+|last|best)\.safetensors$"),
    "previews": re.compile(rf"^((epoch|step)_\d+\.png|{re.escape(COLUMNS_FILE)})$"),
    "tensorboard": re.compile(r"^events\.out\.tfevents\..+$"),
}


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, with the one line that says what exists and how to go on."""


def _foreign(run_dir: Path) -> str | None:
    """Why ``run_dir`` is not recognisably a run directory of imgtrans, or None when it is."""
    toml = run_dir / "config.toml"
    if not toml.is_file() or toml.is_symlink():
        return "it holds no config.toml of imgtrans"
    if read_mark(run_dir) != "train-run":
        return (f"it carries no {MARK_NAME} of an imgtrans run (runs of imgtrans before 0.1 have none: "
                "delete such a folder yourself)")
    try:
        recipe = tomllib.loads(toml.read_text(encoding="utf-8")).get("recipe")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        recipe = None
    if not isinstance(recipe, dict) or not isinstance(recipe.get("name"), str):
        return f"{toml.name} is not the config.toml of an imgtrans run"
    for entry in run_dir.iterdir():
        name = entry.name
        if entry.is_symlink():
            return f"it holds the link {name!r}"
        if is_temp_name(name) and entry.is_file():
            continue
        if name in RUN_FILES and entry.is_file():
            continue
        if entry.is_file() and png_mark(entry) == "eval-contact-sheet":
            continue
        kind = read_mark(entry) if entry.is_dir() else None
        if kind in EVAL_FOLDERS:  # an eval's --out or --report inside the run
            reason = foreign_entry(entry, kind)
            if reason:
                return f"{name}/: {reason}"
            continue
        pattern = RUN_FOLDERS.get(name)
        if pattern is None or not entry.is_dir():
            return f"it holds {name!r}, which imgtrans did not write"
        for inner in entry.iterdir():
            if inner.is_symlink() or not inner.is_file() or not (pattern.match(inner.name) or is_temp_name(inner.name)):
                return f"it holds {name}/{inner.name}, which imgtrans did not write"
    return None


def _data_overlap(run_dir: Path, data_root: Path | None) -> str | None:
    if data_root is None:
        return None
    run, data = Path(os.path.realpath(run_dir)), Path(os.path.realpath(data_root))
    if run == data:
        return "it is the training data folder"
    if run in data.parents:
        return f"it contains the training data ({data})"
    if data in run.parents:
        return f"it lies inside the training data folder {data}"
    return None


def check_overwritable(run_dir: Path, data_root: Path | None) -> None:
    """Raise unless ``--overwrite`` may delete everything in ``run_dir``."""
    reason = _data_overlap(run_dir, data_root) or _foreign(run_dir)
    if reason:
        raise ConfigError(f"refusing to --overwrite {run_dir}: {reason}; only a run directory written by "
                          "`imgtrans train` is replaced; choose another --out")


def _clear(run_dir: Path) -> None:
    """Remove everything in ``run_dir`` but the lock file this process holds."""
    for entry in run_dir.iterdir():
        if entry.name == LOCK_NAME:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` (``path`` included) that does not exist yet."""
    missing = None
    for p in [path, *path.parents]:
        if p.exists():
            break
        missing = p
    return missing


def _undo(run_dir: Path, top: Path | None, lock: RunLock, lock_existed: bool) -> None:
    """Undo what this process created for a run that was then refused: the lock file and the
    folders, if they hold nothing else (another process may have started writing there)."""
    if not lock.held:  # never another process's lock file: a third one could then lock a new file
        return
    if top is not None:
        for sub in ("checkpoints", "previews"):
            try:
                (run_dir / sub).rmdir()
            except OSError:
                pass
    if top is not None or not lock_existed:
        (run_dir / LOCK_NAME).unlink(missing_ok=True)
    if top is None:
        return
    for p in [run_dir, *run_dir.parents]:
        try:
            p.rmdir()
        except OSError:
            return
        if p == top:
            return


def _check_contents(run_dir: Path, overwrite: bool, data_root: Path | None) -> bool:
    """Whether ``run_dir`` holds an earlier run that ``overwrite`` allows replacing; raises if it
    holds anything that may not be replaced."""
    if not any(e.name != LOCK_NAME for e in run_dir.iterdir()):
        return False
    if not overwrite:
        raise ConfigError(f"{run_dir} already holds a run; choose another --out or pass --overwrite")
    check_overwritable(run_dir, data_root)
    return True


def open_run_dir(run_dir: Path, overwrite: bool, data_root: Path | None, lock: RunLock, config_toml: str) -> None:
    """Create (or, with ``overwrite``, empty) ``run_dir``, take its lock for the run and write
    ``config.toml``.

    Called once the configuration and the data have been checked, so a refused run leaves no
    folder behind. What is in the folder is checked before the lock is taken (a refusal then
    leaves not even a lock file in somebody's folder) and again, under the lock, before deleting."""
    created = _first_missing(run_dir)
    if created is None and run_dir.is_dir():
        _check_contents(run_dir, overwrite, data_root)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the run directory {run_dir}: {exc.strerror}") from None
    lock_existed = lock.path.exists()
    try:
        lock.acquire()
        if _check_contents(run_dir, overwrite, data_root):
            _clear(run_dir)
        (run_dir / "checkpoints").mkdir()
        (run_dir / "previews").mkdir()
        write_mark(run_dir, "train-run")
        with atomic_path(run_dir / "config.toml") as tmp:
            tmp.write_text(config_toml, encoding="utf-8")
    except BaseException as exc:
        _undo(run_dir, created, lock, lock_existed)
        lock.release()
        if isinstance(exc, OSError):
            raise ConfigError(f"cannot write the run directory {run_dir}: {exc.strerror}") from None
        raise


def remove_stale_temp_files(run_dir: Path) -> None:
    """Temporary files that a killed run left (no ``except`` runs on SIGKILL). Call with the lock held."""
    for folder in (run_dir, *(run_dir / name for name in RUN_FOLDERS)):
        remove_temp_files(folder)


# -- one training process per run directory --------------------------------------------------------

#: lock descriptors this process holds; a forked child (a data-loader worker) closes its copies at
#: once, so that the run's lock ends with the run's own process: a worker orphaned by a SIGKILL
#: held it for seconds, and the next run named the dead PID
_HELD_FDS: set[int] = set()


def _close_held_in_child() -> None:
    for fd in list(_HELD_FDS):
        try:
            os.close(fd)  # the parent's descriptor, and so its flock, is unaffected
        except OSError:
            pass
    _HELD_FDS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_held_in_child)


class RunLock:
    """Held from :meth:`acquire` to :meth:`release` (or the end of the process, not of its children)."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock or raise :class:`RunError` naming the process that holds it."""
        if fcntl is None or self._fd is not None:
            return self
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise RunError(f"cannot create {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise RunError(f"{self.path.parent} is in use by another `imgtrans train` (PID {holder}); "
                           "wait for it to end or choose another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        _HELD_FDS.add(fd)
        return self

    def release(self) -> None:
        if self._fd is not None:
            _HELD_FDS.discard(self._fd)
            os.close(self._fd)  # releases the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


# -- what to tell the user when a run stops -----------------------------------------------------

def newest_checkpoint(run_dir: Path) -> tuple[int, Path] | None:
    """``(step, path)`` of the newest checkpoint file of ``run_dir`` (by name, and last.safetensors's metadata)."""
    found = step_checkpoints(run_dir)
    last = Path(run_dir) / "checkpoints" / LAST
    if last.is_file():
        step = saved_step(last)
        if step is not None and not any(s >= step for s, _ in found):
            found.append((step, last))
    return max(found, key=lambda sp: sp[0]) if found else None


def resume_command(run_dir: Path) -> str:
    return f"imgtrans train --resume {shlex.quote(str(run_dir))}"


def interrupted(run_dir: Path, step: int) -> TrainingInterrupted:
    newest = newest_checkpoint(run_dir)
    if newest is None:
        return TrainingInterrupted(f"interrupted at step {step}, before the first checkpoint: there is nothing to "
                                   f"resume (start the run again with --overwrite)")
    where = "" if newest[0] == step else f" from the checkpoint of step {newest[0]}"
    return TrainingInterrupted(f"interrupted at step {step}; continue{where} with: {resume_command(run_dir)}")


def diverged_note(run_dir: Path, last_finite: int) -> str:
    """Which checkpoint a diverged run leaves, and whether it predates the divergence
    (checkpoints may be written between two checks of the losses)."""
    newest = newest_checkpoint(run_dir)
    if newest is None:
        return "no checkpoint was written before it."
    step, path = newest
    name = f"{path.parent.name}/{path.name}"
    if step <= last_finite:
        return f"the newest checkpoint, {name} (step {step}), predates it (losses were finite at step {last_finite})."
    checked = f"after the last finite losses (step {last_finite})" if last_finite else "before any losses were checked"
    return f"the newest checkpoint, {name} (step {step}), was written {checked} and may hold the diverged weights."


@contextmanager
def stop_reasons(run_dir: Path, step: Callable[[], int]) -> Iterator[None]:
    """Ctrl-C and failed writes (a full disk) during training become one line that says what
    exists and how to continue. Files are written atomically, so the older ones are intact."""
    try:
        yield
    except KeyboardInterrupt as exc:
        if isinstance(exc, TrainingInterrupted):
            raise
        raise interrupted(run_dir, step()) from None
    except OSError as exc:
        what = f"{exc.filename}: " if exc.filename else ""
        newest = newest_checkpoint(run_dir)
        intact = ("no checkpoint was written yet" if newest is None else
                  f"the checkpoint of step {newest[0]} ({newest[1].name}) is intact; continue with: "
                  f"{resume_command(run_dir)}")
        raise RunError(f"training stopped at step {step()}: {what}{exc.strerror or exc}; {intact}") from None
