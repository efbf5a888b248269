"""Atomic file writes: readers (and a Ctrl-C) never see half a file."""
from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: read once at import: os.umask can only be read by setting it, which is not thread-safe later
UMASK = _read_umask()


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` that replaces ``path`` only if the block succeeds.

    The file gets the permissions an ordinary new file would (``mkstemp`` alone gives 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path.name), suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _temp_prefix(name: str) -> str:
    return f".{name}-"


#: ``.NAME-XXXXXXXX.SUFFIX``: what :func:`atomic_path` names its temporary files (mkstemp's 8 characters)
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)-[a-z0-9_]{8}(?P<suffix>(\.[^.]*)?)$")


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is a temporary file of :func:`atomic_path`: one that a process killed in
    the middle of a write (SIGKILL, power loss) leaves behind, since no ``except`` runs then."""
    m = _TEMP_NAME.match(name)
    return m is not None and m.group("suffix") == Path(m.group("name")).suffix


def remove_temp_files(folder: str | Path) -> list[Path]:
    """Remove the temporary files of :func:`atomic_path` directly in ``folder``; returns them.
    Only safe while nothing is writing there (the caller holds the folder's lock)."""
    removed = []
    folder = Path(folder)
    if folder.is_dir():
        for entry in folder.iterdir():
            if is_temp_name(entry.name) and entry.is_file() and not entry.is_symlink():
                entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed
