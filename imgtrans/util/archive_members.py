"""What each member of a tar or zip archive is, and whether it may be extracted.

Why a module of its own: judging members is the policy half of
:func:`imgtrans.util.archive.safe_extract` (names, types and link targets, all checked before
anything is written); it writes nothing and raises none of the errors a user sees.  A member refused
here raises :class:`_Refused` with the reason (and, from :func:`_plan_members`, the member's name);
a damaged archive raises the library's own error, one of :data:`_CORRUPT`.
:mod:`imgtrans.util.archive` turns both into the errors a user sees, naming the archive, and does
the writing.

The rules themselves (absolute names, drive letters, ``..``, links, devices, FIFOs, ``__MACOSX/``,
``/`` and ``\\`` as separators) are described in :mod:`imgtrans.util.archive`'s docstring.
"""
from __future__ import annotations

import re
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

_SKIPPED_TOP = "__MACOSX"
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(eq=False)
class _Entry:
    name: str                       # the member name as stored, for messages
    parts: tuple[str, ...]          # the checked relative path under dest
    kind: str                       # "dir", "file", "hardlink" (copy of .source) or "symlink" (skipped)
    size: int = 0                   # uncompressed bytes to write
    member: Any = None              # the TarInfo / ZipInfo
    source: "_Entry | None" = None  # for hard links: the file entry copied
    path: Path | None = field(default=None, repr=False)  # where it was written (files)


class _Refused(Exception):
    """A member that must not be extracted; the message is the reason, ``member`` its name once
    :func:`_plan_members` knows it."""

    member = ""


class _Reader:
    """A uniform view of a tar or zip archive: its members and a way to read one."""

    kind = ""

    def members(self) -> list[Any]:
        raise NotImplementedError

    def open(self, member: Any) -> IO[bytes]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _TarReader(_Reader):
    kind = "tar"

    def __init__(self, path: Path):
        self.tar = tarfile.open(path, "r:*")

    def members(self) -> list[tarfile.TarInfo]:
        return self.tar.getmembers()

    def open(self, member: tarfile.TarInfo) -> IO[bytes]:
        f = self.tar.extractfile(member)
        if f is None:  # pragma: no cover - only regular files are ever opened
            raise _Refused("cannot be read as a file")
        return f

    def close(self) -> None:
        self.tar.close()


class _ZipReader(_Reader):
    kind = "zip"

    def __init__(self, path: Path):
        self.zip = zipfile.ZipFile(path)

    def members(self) -> list[zipfile.ZipInfo]:
        return self.zip.infolist()

    def open(self, member: zipfile.ZipInfo) -> IO[bytes]:
        return self.zip.open(member)

    def close(self) -> None:
        self.zip.close()


# What a truncated or damaged archive raises while being read.
_CORRUPT: tuple[type[BaseException], ...] = (tarfile.TarError, zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error,
                                             EOFError, NotImplementedError)
try:
    import lzma

    _CORRUPT += (lzma.LZMAError,)
except ImportError:  # pragma: no cover
    pass


def _plan_members(reader: _Reader, members: list[Any], dest: Path) -> list[_Entry]:
    """Every member as an entry to write, skip or copy; raises on the first member refused, with
    the member's name in :attr:`_Refused.member`."""
    entries: list[_Entry] = []
    written: dict[tuple[str, ...], _Entry] = {}  # regular files so far, for hard links
    for member in members:
        name = member.name if isinstance(member, tarfile.TarInfo) else member.filename
        try:
            entry = (_tar_entry(member) if isinstance(member, tarfile.TarInfo) else _zip_entry(reader, member))
            if entry is None:
                continue
            if isinstance(member, tarfile.TarInfo) and hasattr(tarfile, "data_filter"):
                _data_filter(member, dest)
            if entry.kind == "hardlink":
                source = written.get(_link_parts(member.linkname, hard=True))
                if source is None:
                    raise _Refused(f"is a hard link to {member.linkname!r}, which is not a regular file "
                                   "earlier in the archive")
                entry.source, entry.size = source, source.size
        except _Refused as exc:
            exc.member = name
            raise
        if entry.parts[0] == _SKIPPED_TOP:
            continue
        if entry.kind in ("file", "hardlink"):
            written[entry.parts] = entry
        else:
            written.pop(entry.parts, None)
        entries.append(entry)
    return entries


def _split(name: str) -> list[str]:
    return [p for p in re.split(r"[/\\]", name) if p not in ("", ".")]


def _member_parts(name: str) -> tuple[str, ...]:
    """The checked components of a member name; () for the archive's root folder."""
    if not name:
        return ()
    if name[0] in "/\\":
        raise _Refused("has an absolute path")
    if _DRIVE.match(name):
        raise _Refused("has a drive letter")
    parts = _split(name)
    if ".." in parts:
        raise _Refused("has a '..' component, which would climb out of the destination")
    return tuple(parts)


def _link_parts(target: str, *, hard: bool, at: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Where a link points, relative to the destination: hard links name a member (from the
    archive's root), symbolic links a path relative to their own folder ``at``."""
    kind = "hard link" if hard else "symbolic link"
    if not target:
        raise _Refused(f"is a {kind} with an empty target")
    if target[0] in "/\\" or _DRIVE.match(target):
        raise _Refused(f"is a {kind} to the absolute path {target!r}")
    resolved = list(at)
    for part in _split(target):
        if part == "..":
            if not resolved:
                raise _Refused(f"is a {kind} to {target!r}, which points outside the destination")
            resolved.pop()
        else:
            resolved.append(part)
    return tuple(resolved)


def _tar_entry(member: tarfile.TarInfo) -> _Entry | None:
    parts = _member_parts(member.name)
    if member.ischr() or member.isblk():
        raise _Refused("is a device file")
    if member.isfifo():
        raise _Refused("is a FIFO (named pipe)")
    if member.issym():
        _link_parts(member.linkname, hard=False, at=parts[:-1])
        return _Entry(member.name, parts, "symlink", member=member) if parts else None
    if member.islnk():
        _link_parts(member.linkname, hard=True)  # refuses outside targets; looked up by _plan
        if not parts:
            raise _Refused("is a hard link with an empty name")
        return _Entry(member.name, parts, "hardlink", member=member)
    if member.isdir():
        return _Entry(member.name, parts, "dir", member=member) if parts else None
    if member.isreg():
        if not parts:
            raise _Refused("is a file with an empty name")
        return _Entry(member.name, parts, "file", member.size, member)
    raise _Refused(f"has the unsupported tar type {member.type!r}")


def _zip_entry(reader: _Reader, info: zipfile.ZipInfo) -> _Entry | None:
    name = info.filename
    parts = _member_parts(name)
    mode = info.external_attr >> 16  # Unix mode bits, when the archiver stored them
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        raise _Refused("is a device file")
    if stat.S_ISFIFO(mode):
        raise _Refused("is a FIFO (named pipe)")
    if stat.S_ISLNK(mode):  # a zip symlink stores its target as the member's content
        if info.file_size > 4096:
            raise _Refused("is a symbolic link with an implausibly long target")
        with reader.open(info) as f:
            target = f.read().decode("utf-8", "surrogateescape")
        _link_parts(target, hard=False, at=parts[:-1])
        return _Entry(name, parts, "symlink", member=info) if parts else None
    if info.is_dir() or name.endswith("\\"):
        return _Entry(name, parts, "dir", member=info) if parts else None
    if not parts:
        raise _Refused("is a file with an empty name")
    if info.flag_bits & 0x1:
        raise _Refused("is encrypted")
    return _Entry(name, parts, "file", info.file_size, info)


def _data_filter(member: tarfile.TarInfo, dest: Path) -> None:
    """Defense in depth: Python's own "data" extraction filter (3.12+, and 3.11.4+) must agree."""
    try:
        tarfile.data_filter(member, str(dest.absolute()))  # type: ignore[attr-defined]
    except tarfile.FilterError as exc:  # type: ignore[attr-defined]
        raise _Refused(f"is rejected by Python's tar data filter ({type(exc).__name__})") from None


def _strip_top(entries: list[_Entry]) -> list[_Entry]:
    """Without the single top-level folder, if there is one; else unchanged."""
    tops = {e.parts[0] for e in entries}
    if len(tops) != 1:
        return entries
    (top,) = tops
    if any(e.parts == (top,) and e.kind != "dir" for e in entries) or not any(len(e.parts) > 1 for e in entries):
        return entries  # the only top-level thing is a file (or link), not a folder
    kept = []
    for e in entries:
        if len(e.parts) > 1:
            e.parts = e.parts[1:]
            kept.append(e)
    return kept
