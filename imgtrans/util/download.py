"""The one downloader shared by the model zoo and the dataset catalogue.

Why one: resuming, verification, offline mode, mirrors and error messages should behave the same
whether a user fetches weights or a dataset, and be tested once.  It uses only the standard
library (plus rich for the progress bar), so it adds no dependency and ``import imgtrans`` stays
cheap (rich is imported only when a download actually starts).

The life of a download::

    dest exists and verifies  -> returned at once, no network (the cache)
    IMGTRANS_OFFLINE=1        -> OfflineError naming the URL and where to put the file
    otherwise                 -> bytes go to DEST.part (resumed with a Range request if present),
                                 are hashed as they arrive, checked against size and sha256, and
                                 only then renamed onto DEST (atomic): DEST is never half-written.

Every download is bounded (see :mod:`imgtrans.util.download_limits`): it may not grow past the
expected size (or a cap) and may not stall; a ``.part`` that breaks a bound or fails
verification is deleted, never resumed.  One process at a time works on DEST (``DEST.lock``,
see :mod:`imgtrans.util.cachelock`); another waits, then finds DEST cached.

Sources may be ``http(s)://`` URLs, ``file://`` URLs or plain local paths, so a mirror can be a
web server or a folder on a shared drive (see :func:`mirrored`).
"""
from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from .cachelock import cache_lock
from .download_limits import (
    MAX_DOWNLOAD_ENV,
    MIN_RATE_ENV,
    STALL_ENV,
    STALL_MIN_BYTES,
    StallWatch,
    default_max_bytes,
    human,
    min_rate,
    stall_seconds,
)
from .download_transfer import _content_range_start, _hash_prefix, _pump, _Stalled, _TooBig
from .errors import ImgtransError
from .terminal import StderrBar

__all__ = [
    "DownloadError", "ChecksumMismatch", "OfflineError", "NetworkError", "OFFLINE_ENV",
    "is_offline", "sha256_file", "mirrored", "fetch",
]

OFFLINE_ENV = "IMGTRANS_OFFLINE"
"""Set to 1/true/yes to forbid network access: only cached files (and local sources) are used."""

_NETWORK_SCHEMES = ("http", "https", "ftp")


class DownloadError(ImgtransError):
    """A download that failed; the one-line message says what failed and what to do next."""


class ChecksumMismatch(DownloadError):
    """The downloaded bytes are not the published ones (corrupt transfer, wrong mirror, tampering).

    The bad file is deleted so that the next attempt starts clean instead of resuming from it."""


class OfflineError(DownloadError):
    """A file that is not cached was needed while :data:`OFFLINE_ENV` forbids the network."""


class NetworkError(DownloadError):
    """The server could not be reached, refused, stalled or broke off: what a machine without
    internet meets (the message says how to do without the network)."""


def is_offline() -> bool:
    """Whether :data:`OFFLINE_ENV` is set to 1, true or yes (any case): clusters without internet
    set it so that a missing file fails at once with a useful message instead of a timeout."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """The sha256 hex digest of a file, read in ``chunk``-byte pieces so big files need no memory."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def mirrored(url: str, mirror: str | None) -> str:
    """Where to fetch ``url`` from when a mirror is configured.

    ``mirror=None`` returns ``url`` unchanged.  Otherwise the result is the mirror's base (an
    ``http(s)://`` or ``file://`` URL, or a local folder) joined with the last path component of
    ``url``, so a mirror is simply a flat folder of the published files, e.g.
    ``mirrored("https://host/a/b/model.safetensors", "https://mirror/zoo/")`` is
    ``"https://mirror/zoo/model.safetensors"``.  The query string and fragment of ``url`` are dropped.
    """
    if mirror is None:
        return url
    name = urllib.parse.urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    if not name:
        raise DownloadError(f"cannot mirror {url}: it has no file name to look up on the mirror {mirror}")
    _check_url(mirror, "mirror ")
    if _is_url(mirror):
        return mirror.rstrip("/") + "/" + name
    # A local folder: the name is a file name there, not a URL component.
    return os.path.join(os.path.expanduser(mirror), urllib.parse.unquote(name))


def fetch(url: str, dest: Path, *, sha256: str | None = None, size: int | None = None,
          progress: bool = True, timeout: float = 30.0, description: str | None = None,
          max_bytes: int | None = None, stall: float | None = None, advice: str = "") -> str:
    """Make sure ``dest`` holds the file published at ``url`` and return its sha256 hex digest.

    - ``dest`` already there and matching ``sha256`` (or ``sha256`` is None): returned at once,
      without touching the network, so callers can call this unconditionally.  A ``dest`` that
      does not match is treated as corrupt, deleted and downloaded again.
    - Bytes are written to ``dest`` + ``.part``; an existing part is resumed with an HTTP Range
      request (a server that ignores Range makes the download start over).  Errors keep the part.
    - ``size`` / ``sha256`` are checked before ``dest`` appears (atomic rename); a part that fails
      the check is deleted, since resuming from it could never succeed.
    - ``url`` may also be a ``file://`` URL or a local path (a mirror on a shared drive); those are
      copied with the same verification, and are allowed even when offline (no network is used).
    - ``progress`` shows a transient rich bar on stderr when it is a terminal; ``timeout`` is the
      socket timeout in seconds; ``description`` labels the bar (default: the file name).
    - The download may not grow past ``size`` when given, else ``max_bytes``, else the cap of
      :func:`~imgtrans.util.download_limits.default_max_bytes` (a Content-Length beyond it is refused
      before any byte is written), and is abandoned when fewer than 1 kB arrive in ``stall``
      seconds (default: :func:`~imgtrans.util.download_limits.stall_seconds`).  A part that exceeds
      the bound is deleted; a stalled one is kept for resuming.
    - When the network cannot help (offline, unreachable, stalled), the one-line error says where
      to put the file by hand and its sha256, then ``advice``: the caller's mirror variable and
      offline alternatives.
    - One process at a time: the lock file ``dest`` + ``.lock`` is held while the file is made.

    Raises :class:`OfflineError`, :class:`ChecksumMismatch` or :class:`DownloadError`, each with a
    one-line message naming the URL and the cache path.
    """
    dest = Path(dest)
    want = sha256.strip().lower() if sha256 else None
    if dest.is_file() and want is not None and sha256_file(dest) == want:
        return want  # a verified cache hit needs no lock (dest only ever appears complete)
    limit = size if size is not None else max_bytes if max_bytes is not None else default_max_bytes()
    stall_s = stall if stall is not None else stall_seconds()
    rate = min_rate()
    local = _local_source(url)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(_one_line(f"cannot create the cache folder {dest.parent}: {exc}")) from exc

    with cache_lock(dest):
        if dest.is_file():
            digest = sha256_file(dest)
            if want is None or digest == want:
                return digest
            _unlink(dest)  # corrupt or outdated: download again

        part = dest.parent / (dest.name + ".part")
        label = description or dest.name
        by_hand = f"put the file at {dest} yourself" + (f" (sha256 {want})" if want else "") + \
            (f"; {advice}" if advice else "")
        if local is None and is_offline():
            raise OfflineError(f"offline ({OFFLINE_ENV}={os.environ.get(OFFLINE_ENV, '').strip()}): "
                               f"cannot download {url}; unset {OFFLINE_ENV}, or {by_hand}")
        if local is not None:
            digest = _copy_local(url, local, part, dest, label, progress, limit)
        else:
            try:
                digest = _download(url, part, dest, size, label, progress, timeout, limit, stall_s, rate)
            except NetworkError as exc:
                raise NetworkError(_one_line(f"{exc}; without the network, {by_hand}")) from None
        return _finish(url, part, dest, digest, want, size)


# --------------------------------------------------------------------------------------------
# internals


def _check_url(s: str, what: str = "") -> None:
    """Refuse a malformed URL (``http://[::1``) in one line instead of a ValueError traceback."""
    try:
        urllib.parse.urlsplit(s).port  # noqa: B018 - parsing the port is what validates it
    except ValueError as exc:
        raise DownloadError(_one_line(f"{what}{s!r} is not a valid URL ({exc}); fix it")) from None


def _is_url(s: str) -> bool:
    scheme = urllib.parse.urlsplit(s).scheme
    return len(scheme) > 1  # "C:\\..." has a one-letter "scheme": a Windows path, not a URL


def _local_source(url: str) -> Path | None:
    """The local path behind a ``file://`` URL or a plain path; None for a network URL."""
    _check_url(url)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        path = urllib.request.url2pathname(parts.path)
        if parts.netloc and parts.netloc != "localhost":
            path = "//" + parts.netloc + path  # file://server/share/x: a UNC path
        return Path(path)
    if _is_url(url):
        return None
    return Path(url).expanduser()


def _one_line(msg: str) -> str:
    return " ".join(msg.split())


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise DownloadError(_one_line(f"cannot delete {path}: {exc}; delete it by hand and retry")) from exc


def _user_agent() -> str:
    from .version import __version__

    return f"imgtrans/{__version__}"


def _network_error(url: str, what: str, part: Path, dest: Path) -> NetworkError:
    try:
        kept = part.stat().st_size
    except OSError:
        kept = 0
    if kept:
        hint = f"the partial file {part} ({kept} bytes) is kept, run again to resume"
    else:
        hint = "check the URL and your connection, then run again"
    return NetworkError(_one_line(f"download of {url} failed: {what}; {hint}"))  # fetch adds where the file goes


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _cannot_write(path: Path) -> Callable[[OSError], DownloadError]:
    """The error for a write into ``path`` that failed (disk full), for :func:`_pump`."""
    return lambda exc: DownloadError(_one_line(f"cannot write {path}: {exc}; free some space and run again"))


def _too_big(url: str, part: Path, dest: Path, limit: int, what: str) -> DownloadError:
    """The error for a download past its bound; the part is deleted (it can never be resumed)."""
    _unlink(part)
    return DownloadError(_one_line(
        f"download of {url} refused: {what} more than the {human(limit)} ({limit} bytes) it may take "
        f"(the expected size, or {MAX_DOWNLOAD_ENV} when none is declared); the partial file was "
        f"deleted (cache path: {dest})"))


def _copy_local(url: str, src: Path, part: Path, dest: Path, label: str, progress: bool, limit: int) -> str:
    """Copy a local source into ``part`` (from zero: local copies are cheap), hashing as we go."""
    try:
        f = open(src, "rb")
        total = os.fstat(f.fileno()).st_size
    except OSError as exc:
        raise DownloadError(_one_line(
            f"cannot read {url}: {exc.strerror or exc}; fix the path or mirror, or put the file at {dest}")) from exc
    hasher = hashlib.sha256()
    try:
        with f, open(part, "wb") as out, StderrBar(progress, label, unit="bytes") as bar:
            bar.reset(0, total)
            _pump(f.read, out, hasher, bar,
                  lambda exc: DownloadError(_one_line(f"cannot read {url}: {exc}; put the file at {dest}")),
                  _cannot_write(part), room=limit)
    except _TooBig:
        raise _too_big(url, part, dest, limit, "it holds") from None
    return hasher.hexdigest()


def _download(url: str, part: Path, dest: Path, size: int | None, label: str, progress: bool,
              timeout: float, limit: int, stall: float, rate: int | None = None) -> str:
    """Fetch ``url`` into ``part``, resuming it if present; returns the sha256 of the whole part."""
    offset = part.stat().st_size if part.is_file() else 0
    if offset > limit:
        _unlink(part)  # longer than the file can be: useless for resuming
        offset = 0
    if size is not None and offset == size and offset > 0:
        return sha256_file(part)  # a complete part from an interrupted earlier run: just verify it

    for attempt in range(2):  # the second attempt only after a 206 for the wrong range
        req = urllib.request.Request(url, headers={"User-Agent": _user_agent(), "Accept-Encoding": "identity"})
        if offset:
            req.add_header("Range", f"bytes={offset}-")
        try:
            resp = urllib.request.urlopen(req, timeout=min(timeout, stall))
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 416 and offset:
                return sha256_file(part)  # nothing past our offset: the part is complete; verify it
            raise _network_error(url, _reason(exc), part, dest) from exc
        except (OSError, http.client.HTTPException, ValueError) as exc:  # URLError, refused, timeout, bad URL
            raise _network_error(url, _reason(exc), part, dest) from exc

        with resp:
            status = getattr(resp, "status", 200)
            length_header = resp.headers.get("Content-Length")
            length = int(length_header) if length_header and length_header.isdigit() else None
            if status == 206 and offset:
                start = _content_range_start(resp.headers.get("Content-Range"))
                if start != offset and attempt == 0:  # not the range we asked for: start over cleanly
                    _unlink(part)
                    offset = 0
                    continue
                mode, hasher = "ab", _hash_prefix(part, offset)
            else:  # 200 (Range ignored, or a fresh download): start from zero
                offset, mode, hasher = 0, "wb", hashlib.sha256()
            if length is not None and offset + length > limit:
                raise _too_big(url, part, dest, limit, f"the server announces {offset + length} bytes,")

            total = offset + length if length is not None else size
            try:
                out = open(part, mode)
            except OSError as exc:
                raise DownloadError(_one_line(f"cannot write {part}: {exc}")) from exc
            # read1 returns what has arrived: read() would wait for a whole chunk from a trickle
            read = getattr(resp, "read1", resp.read)
            try:
                with out, StderrBar(progress, label, unit="bytes") as bar:
                    bar.reset(offset, total)
                    got = _pump(read, out, hasher, bar, lambda exc: _network_error(url, _reason(exc), part, dest),
                                _cannot_write(part), room=limit - offset, watch=(watch := StallWatch(stall, rate)))
            except _TooBig:
                raise _too_big(url, part, dest, limit, "it sent") from None
            except _Stalled:
                if watch.too_slow:
                    raise _network_error(url, f"too slow ({watch.too_slow}, below the {human(rate)}/s that "
                                         f"{MIN_RATE_ENV} requires)", part, dest) from None
                raise _network_error(url, f"stalled (less than {STALL_MIN_BYTES} bytes in {stall:g} s; "
                                     f"{STALL_ENV} sets the deadline)", part, dest) from None
            if length is not None and got < length:
                raise _network_error(url, f"the connection closed after {got} of {length} bytes", part, dest)
            return hasher.hexdigest()
    raise AssertionError("unreachable")  # pragma: no cover


def _finish(url: str, part: Path, dest: Path, digest: str, want: str | None, size: int | None) -> str:
    """Verify the complete ``part`` and move it onto ``dest`` atomically."""
    if size is not None:
        got = part.stat().st_size
        if got != size:
            _unlink(part)
            raise DownloadError(f"size mismatch for {url}: expected {size} bytes, got {got}; "
                                f"the download was deleted, run again (cache path: {dest})")
    if want is not None and digest != want:
        _unlink(part)
        raise ChecksumMismatch(f"sha256 mismatch for {url}: expected {want}, got {digest}; "
                               f"the download was deleted (cache path: {dest})")
    try:
        os.replace(part, dest)
    except OSError as exc:
        raise DownloadError(_one_line(f"cannot move {part} to {dest}: {exc}")) from exc
    return digest
