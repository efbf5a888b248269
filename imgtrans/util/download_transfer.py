"""How the bytes of a download move into its ``.part`` file: bounded, hashed, watched for stalls.

Why a module of its own: :func:`imgtrans.util.download.fetch` decides what to fetch, from where,
whether a cached or partial file can be used and what to tell the user; the copy loop underneath
is the same for an HTTP response and a local file, and so are the two helpers a resumed HTTP
download needs (where the server's range starts, and the hash of the bytes already kept).  None
of this names a URL or a cache path, or raises an error a user sees: running past the bound or
stalling raises :class:`_TooBig` or :class:`_Stalled`, and a failed read or write becomes
whatever error the caller's callback makes, so :mod:`imgtrans.util.download` words every message.
"""
from __future__ import annotations

import hashlib
import http.client
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .download_limits import StallWatch
from .terminal import StderrBar

_CHUNK = 1 << 16


class _TooBig(Exception):
    """More bytes arrived than the download's bound allows."""


class _Stalled(Exception):
    """Too few bytes arrived within the stall deadline."""


def _pump(read: Callable[[int], bytes], out: IO[bytes], hasher: Any, bar: StderrBar,
          on_read_error: Callable[[BaseException], Exception], on_write_error: Callable[[OSError], Exception], *,
          room: int, watch: StallWatch | None = None) -> int:
    """Copy ``read`` into ``out`` until EOF, hashing and advancing the bar; returns the byte count.

    More than ``room`` bytes raise :class:`_TooBig`; too little progress for ``watch`` (or a
    socket timeout) raises :class:`_Stalled`.  Other read failures become ``on_read_error(exc)``,
    write failures (disk full) ``on_write_error(exc)``."""
    n = 0
    while True:
        try:
            block = read(_CHUNK)
        except TimeoutError as exc:
            out.flush()
            raise _Stalled from exc
        except (OSError, http.client.HTTPException) as exc:  # URLError, resets, IncompleteRead
            out.flush()
            raise on_read_error(exc) from exc
        if not block:
            return n
        if n + len(block) > room:
            raise _TooBig
        try:
            out.write(block)
        except OSError as exc:
            raise on_write_error(exc) from exc
        hasher.update(block)
        n += len(block)
        bar.advance(len(block))
        if watch is not None and watch.stalled(len(block)):
            out.flush()
            raise _Stalled


def _content_range_start(value: str | None) -> int | None:
    """The first byte of ``Content-Range: bytes START-END/TOTAL``, or None if unparsable."""
    try:
        unit, rest = (value or "").split(None, 1)
        return int(rest.split("-", 1)[0]) if unit == "bytes" else None
    except ValueError:
        return None


def _hash_prefix(part: Path, offset: int) -> Any:
    """A sha256 object fed with the first ``offset`` bytes already in ``part``."""
    h = hashlib.sha256()
    with open(part, "rb") as f:
        remaining = offset
        while remaining and (block := f.read(min(1 << 20, remaining))):
            h.update(block)
            remaining -= len(block)
    return h
