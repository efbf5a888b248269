"""One training process per run directory: an exclusive ``flock`` on ``RUN/train.lock``.

Two runs writing one directory mix their checkpoints, metrics and config without either
noticing, so the second one refuses instead, naming the first one's PID (written into the lock
file). ``flock`` locks belong to the open file, so the kernel releases them when the holder
exits, however it exits: a killed run never leaves a stale lock, and the file itself may stay.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..util.errors import RunError

LOCK_NAME = "train.lock"

try:
    import fcntl
except ImportError:  # not POSIX: runs are not locked there
    fcntl = None  # type: ignore[assignment]


class RunLock:
    """Held from :meth:`acquire` to :meth:`release` (or the end of the process)."""

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
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None
