"""One writer at a time per cached file, across processes.

Two ``imgtrans zoo pull`` (or two trainings resolving the same dataset) started together would
otherwise write the same ``.part`` and race to rename it.  Each cached file ``X`` gets a lock file
``X.lock`` next to it, held with ``fcntl.flock`` for as long as ``X`` is being produced: the
second process waits, then finds ``X`` complete and verifies it like any cache hit.  The kernel
releases the lock when its holder exits, even after SIGKILL, so a crash never leaves the cache
locked.  The holder deletes the lock file before releasing it; a waiter that then gets the lock
of a deleted file notices (the path no longer names the file it locked) and starts over, so
removing lock files never lets two processes in.  A lock file left by a killed process is
harmless and is reused.

On systems without ``fcntl`` (Windows) no lock is taken.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import ImgtransError
from .terminal import warn_stderr

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["cache_lock", "lock_path"]


def lock_path(path: Path) -> Path:
    """The lock file guarding ``path``: ``path`` + ``.lock``, in the same folder."""
    path = Path(path)
    return path.parent / (path.name + ".lock")


@contextmanager
def cache_lock(path: str | Path, *, wait: bool = True, what: str = "another imgtrans process") -> Iterator[None]:
    """Hold the exclusive lock of ``path``: waiting, with one line on stderr, if another process has
    it, or with ``wait=False`` refusing in one line that names ``what`` holds it (two ``imgtrans data
    make`` runs on one OUT must not take turns deleting each other's work)."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    lock = lock_path(Path(path))
    waited = False
    while True:
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise ImgtransError(" ".join(f"cannot create the lock file {lock}: {exc.strerror or exc}; "
                                         "check the permissions of the cache folder".split())) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                os.close(fd)
                raise ImgtransError(f"{path} is in use by {what} (lock file {lock}); wait for it to finish, or "
                                    "choose another output") from None
            if not waited:
                warn_stderr(f"waiting for another imgtrans process to finish with {path} (lock file {lock})")
                waited = True
            fcntl.flock(fd, fcntl.LOCK_EX)
        if _still_named(lock, fd):
            break
        os.close(fd)  # the holder deleted it while we waited: lock the current file instead
    try:
        yield
    finally:
        try:
            lock.unlink()  # while still holding it: see the module docstring
        except OSError:
            pass
        os.close(fd)  # closing the descriptor releases the lock


def _still_named(lock: Path, fd: int) -> bool:
    try:
        now, held = os.stat(lock), os.fstat(fd)
    except FileNotFoundError:
        return False
    return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)
