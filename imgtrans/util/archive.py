"""Safe extraction of downloaded dataset archives.

Public datasets (pix2pix ``facades.tar.gz``, CycleGAN ``horse2zebra.zip``, ...) publish no
checksums, so an archive is judged by what it contains: :func:`safe_extract` refuses anything a
dataset never needs and a hostile archive would use, and
:func:`imgtrans.data.catalog.verify_structure` checks the result has the expected folders and
image counts.

The life of an extraction::

    kind by content      -> tar (plain, gz, bz2, xz) or zip, whatever the suffix; else ArchiveError
    every member checked -> absolute names, drive letters, ``..``, links leaving the destination,
                            devices and FIFOs are refused *before anything is written*
    space checked        -> uncompressed total (+5%) against the free space; zips over ``max_bytes``
                            are refused (zip bombs)
    members written      -> one by one into a temporary folder next to ``dest`` (same filesystem),
                            as plain files and folders: no permissions, owners or times from the
                            archive are applied
    rename               -> the temporary folder becomes ``dest``; any failure, Ctrl-C included,
                            removes it, so ``dest`` is either complete or absent

Links: datasets never need them, so **symbolic links are never created**.  One pointing outside
the destination (absolute, or climbing out with ``..``) is refused loudly, like any hostile member;
one pointing inside is skipped, with a single warning listing them.  A tar **hard link** to a
regular file earlier in the archive is written as a plain copy of that file (tar tools store
identical files that way); one to anything else is refused.

``__MACOSX/`` folders (resource forks added by the macOS archiver) are skipped silently.  Both
``/`` and ``\\`` separate components when names are checked and written, so a name made on
Windows cannot climb out either.

Which members are allowed is decided in :mod:`imgtrans.util.archive_members`; this module opens
the archive, words every error for the user (naming the archive), checks the space and writes.
"""
from __future__ import annotations

import math
import os
import shutil
import tarfile
import tempfile
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .archive_members import (
    _CORRUPT,
    _Entry,
    _plan_members,
    _Reader,
    _Refused,
    _strip_top,
    _TarReader,
    _ZipReader,
)
from .download_limits import human
from .errors import DataError
from .terminal import StderrBar

__all__ = ["ArchiveError", "RefusedArchive", "safe_extract", "DEFAULT_MAX_BYTES"]

DEFAULT_MAX_BYTES = 100 * 10**9
"""Largest total uncompressed size :func:`safe_extract` accepts (100 GB): larger is a zip bomb."""

SPACE_MARGIN = 0.05
"""Extra free space required on top of the uncompressed total (5%)."""

_CHUNK = 1 << 20


class ArchiveError(DataError):
    """An archive that cannot be (or must not be) extracted; the message names the file, the
    offending member where there is one, and what to do."""


class RefusedArchive(ArchiveError):
    """The archive itself is bad (hostile, corrupt, truncated, not an archive, a zip bomb), as
    opposed to the place it goes (disk full, permissions): a cached copy must not be reused."""


# --------------------------------------------------------------------------------------------
# the public functions


def safe_extract(archive: Path, dest: Path, *, strip_top: bool = False, progress: bool = True,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> Path:
    """Extract the tar or zip ``archive`` into the new folder ``dest`` safely and atomically; return ``dest``.

    - The kind is found from the content (``.tar``, ``.tar.gz``/``.tgz``, ``.tar.bz2``,
      ``.tar.xz``, ``.zip``); anything else raises :class:`ArchiveError` naming the file.
    - Every member is checked before anything is written.  Absolute names, drive letters, ``..``
      components, symbolic or hard links whose target is absolute or outside ``dest``, device files
      and FIFOs raise :class:`ArchiveError` naming the member and the reason.  Links pointing
      inside are handled as described in the module docstring (symlinks skipped with a warning,
      hard links copied).
    - The uncompressed total plus 5% must fit in the free space of the disk holding ``dest``,
      and must not exceed ``max_bytes`` (default 100 GB: blocks zip bombs).
    - ``dest`` must not exist, or be an empty folder.  Members are written into a temporary folder
      next to it, renamed to ``dest`` at the end; on any failure (KeyboardInterrupt included) the
      temporary folder is removed and ``dest`` does not exist.
    - ``strip_top=True``: when everything sits under one top-level folder (``facades/train/...``),
      that folder's contents become ``dest``'s contents; otherwise the archive is taken as is.
    - ``progress`` shows a transient rich bar over the members on stderr when it is a terminal.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise ArchiveError(f"archive {archive} does not exist or is not a file; download it again")
    if dest.is_symlink() or dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ArchiveError(f"cannot extract {archive.name} into {dest}: it already exists and is not an "
                           "empty folder; delete it or choose another destination")

    with _open(archive) as reader:
        entries = _plan(archive, reader, dest)
        if strip_top:
            entries = _strip_top(entries)
        files = [e for e in entries if e.kind in ("file", "hardlink")]
        if not files:
            raise RefusedArchive(f"archive {archive} contains no files; delete it and download it again")
        total = sum(e.size for e in files)
        if total > max_bytes:
            raise RefusedArchive(
                f"archive {archive} declares {human(total)} ({total} bytes) of uncompressed data, more than "
                f"the limit of {human(max_bytes)}; refusing it as a possible zip bomb (pass a larger "
                "max_bytes if you trust it)")
        _check_space(archive, dest, total)
        links = [e.name for e in entries if e.kind == "symlink"]
        if links:
            shown = ", ".join(repr(n) for n in links[:5]) + (f" and {len(links) - 5} more" if len(links) > 5 else "")
            warnings.warn(f"{archive.name}: skipped {len(links)} symbolic link(s) pointing inside the archive "
                          f"(datasets do not need them): {shown}", stacklevel=2)
        _extract(archive, reader, entries, dest, progress)
    return dest


# --------------------------------------------------------------------------------------------
# reading and planning: every member listed and checked before anything is written


@contextmanager
def _open(archive: Path) -> Iterator[_Reader]:
    """The archive's reader, chosen from its content (tar is tried first: its headers carry a
    checksum, whereas a zip's directory may legitimately sit after other data)."""
    reader: _Reader
    try:
        if tarfile.is_tarfile(archive):
            reader = _TarReader(archive)
        elif zipfile.is_zipfile(archive):
            reader = _ZipReader(archive)
        else:
            raise RefusedArchive(f"{archive} is not a tar (.tar, .tar.gz, .tgz, .tar.bz2, .tar.xz) or zip archive; "
                               "delete it and download it again")
    except ArchiveError:
        raise
    except OSError as exc:
        raise ArchiveError(_one_line(f"cannot read {archive}: {exc.strerror or exc}")) from exc
    except _CORRUPT as exc:
        raise _corrupt(archive, exc) from exc
    try:
        yield reader
    finally:
        reader.close()


def _corrupt(archive: Path, exc: BaseException) -> ArchiveError:
    why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return RefusedArchive(_one_line(f"archive {archive} is corrupt or truncated ({why}); delete it and download it again"))


def _refusal(archive: Path, name: str, reason: str) -> ArchiveError:
    return RefusedArchive(_one_line(
        f"refusing to extract {archive}: member {name!r} {reason}; nothing was extracted "
        "(the archive is corrupt or malicious: delete it and download it from the official source)"))


def _plan(archive: Path, reader: _Reader, dest: Path) -> list[_Entry]:
    """Every member as an entry to write, skip or copy (see :mod:`imgtrans.util.archive_members`);
    raises on the first member refused."""
    try:
        members = reader.members()
    except OSError as exc:
        raise ArchiveError(_one_line(f"cannot read {archive}: {exc.strerror or exc}")) from exc
    except _CORRUPT as exc:
        raise _corrupt(archive, exc) from exc
    try:
        return _plan_members(reader, members, dest)
    except _Refused as exc:
        raise _refusal(archive, exc.member, str(exc)) from None
    except _CORRUPT as exc:
        raise _corrupt(archive, exc) from exc


# --------------------------------------------------------------------------------------------
# checking space and writing


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _check_space(archive: Path, dest: Path, total: int) -> None:
    where = _existing_ancestor(dest.parent)
    try:
        free = shutil.disk_usage(where).free
    except OSError:  # cannot tell: let the writes report a full disk if it comes to that
        return
    need = math.ceil(total * (1.0 + SPACE_MARGIN))
    if need > free:
        raise ArchiveError(
            f"not enough disk space to extract {archive.name} into {dest}: need {human(need)} ({need} bytes, "
            f"including a {SPACE_MARGIN:.0%} margin), free {human(free)} ({free} bytes) on {where}; "
            "free some space or set IMGTRANS_HOME to a bigger disk")


class _Oversize(Exception):
    """A member produced more bytes than it declared."""


def _write_file(src: IO[bytes], target: Path, limit: int) -> int:
    """Copy ``src`` into the new plain file ``target`` (never through a link); returns the byte
    count.  Permissions come from the umask, never from the archive."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(target, flags, 0o666)
    n = 0
    with os.fdopen(fd, "wb") as out:
        while block := src.read(_CHUNK):
            n += len(block)
            if n > limit:
                raise _Oversize
            out.write(block)
    return n


def _inside(root_real: str, path: Path) -> bool:
    real = os.path.realpath(path)
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def _extract(archive: Path, reader: _Reader, entries: list[_Entry], dest: Path, progress: bool) -> None:
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", suffix=".extracting", dir=dest.parent))
    except OSError as exc:
        raise ArchiveError(_one_line(f"cannot create a folder next to {dest}: {exc.strerror or exc}")) from exc
    try:
        root = tmp / "content"  # made with the umask's permissions (mkdtemp's are private)
        root.mkdir()
        root_real = os.path.realpath(root)
        with StderrBar(progress, f"extracting {archive.name}", total=len(entries)) as bar:
            for entry in entries:
                try:
                    _write_entry(reader, entry, root, root_real)
                except _Refused as exc:
                    raise _refusal(archive, entry.name, str(exc)) from None
                except _Oversize:
                    raise _refusal(archive, entry.name, f"holds more than the {entry.size} bytes it declares") from None
                except (FileExistsError, NotADirectoryError, IsADirectoryError):
                    raise _refusal(archive, entry.name, "clashes with another member (a file where a folder is "
                                   "needed, or the reverse)") from None
                except OSError as exc:
                    raise ArchiveError(_one_line(
                        f"cannot extract member {entry.name!r} of {archive} into {dest}: {exc.strerror or exc}; "
                        "check the free space and permissions, then run again")) from exc
                except _CORRUPT as exc:
                    raise _corrupt(archive, exc) from exc
                bar.advance()
        try:
            if dest.is_dir():  # checked empty at the start
                dest.rmdir()
            os.rename(root, dest)
        except OSError as exc:
            raise ArchiveError(_one_line(
                f"cannot move the extracted {archive.name} to {dest}: {exc.strerror or exc}; "
                "is another process extracting there? delete it and run again")) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_entry(reader: _Reader, entry: _Entry, root: Path, root_real: str) -> None:
    if entry.kind == "symlink":
        return
    target = root.joinpath(*entry.parts)
    folder = target if entry.kind == "dir" else target.parent
    folder.mkdir(parents=True, exist_ok=True)
    if not _inside(root_real, folder):  # cannot happen without links, which are never written
        raise _Refused("resolves to a path outside the destination")
    if entry.kind == "dir":
        return
    if entry.kind == "hardlink":
        assert entry.source is not None and entry.source.path is not None
        if entry.source.path == target:  # a link to itself: the file is already there
            return
        with open(entry.source.path, "rb") as src:
            _write_file(src, target, entry.size)
    else:
        with reader.open(entry.member) as src:
            _write_file(src, target, entry.size)
    entry.path = target


def _one_line(msg: str) -> str:
    return " ".join(msg.split())
