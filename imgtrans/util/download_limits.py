"""How big a download may grow and how long it may stall before the downloader gives up.

Why: a server that never stops sending would fill the disk, and one that sends a byte a second
would hang a training job forever.  Every download therefore has

* a **size bound**: the exact size when the caller knows it (a manifest's ``size``), else the
  approximate size with a margin (``size_mb``), else :data:`MAX_DOWNLOAD_ENV` (default 20 GB);
* a **stall deadline**: fewer than :data:`STALL_MIN_BYTES` arriving within
  :data:`STALL_ENV` seconds (default 60), silence included, ends the download with one line;
* a **minimum average rate**: once a whole stall window has passed, a download averaging less
  than :data:`MIN_RATE_ENV` (default 4 kB/s) since it started ends too, so a server that drips
  just over 1 kB per window cannot hold a job forever.
"""
from __future__ import annotations

import math
import os
import re
import time

from .errors import ConfigError

__all__ = ["MAX_DOWNLOAD_ENV", "STALL_ENV", "MIN_RATE_ENV", "DEFAULT_MIN_RATE", "min_rate", "DEFAULT_MAX_DOWNLOAD", "DEFAULT_STALL_S", "STALL_MIN_BYTES",
           "APPROX_MARGIN", "default_max_bytes", "approx_limit", "stall_seconds", "StallWatch", "human"]

MAX_DOWNLOAD_ENV = "IMGTRANS_MAX_DOWNLOAD"
"""Largest download accepted when its size is not declared: bytes, or with a k/M/G/T suffix (``50G``)."""

STALL_ENV = "IMGTRANS_DOWNLOAD_STALL"
"""Seconds a download may go on without :data:`STALL_MIN_BYTES` arriving before it is abandoned."""

MIN_RATE_ENV = "IMGTRANS_DOWNLOAD_MIN_RATE"
"""Slowest average rate accepted, in bytes per second (or with a k/M suffix: ``4k``)."""
DEFAULT_MAX_DOWNLOAD = 20 * 10**9
DEFAULT_MIN_RATE = 4000
DEFAULT_STALL_S = 60.0
STALL_MIN_BYTES = 1024
APPROX_MARGIN = 1.5
"""An approximate size (``size_mb``) bounds a download at this multiple of it, plus 1 MB."""

_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def _amount(variable: str, default: int, example: str) -> int:
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)b?", raw.lower())
    value = float(match.group(1)) * _SUFFIX[match.group(2)] if match else 0
    if value < 1:
        raise ConfigError(f"{variable}={raw!r} is not a size; use bytes or a number with a "
                          f"k/M/G/T suffix, e.g. {example}")
    return int(value)


def default_max_bytes() -> int:
    """The size bound for downloads of undeclared size: :data:`MAX_DOWNLOAD_ENV`, else 20 GB."""
    return _amount(MAX_DOWNLOAD_ENV, DEFAULT_MAX_DOWNLOAD, "50G")


def min_rate() -> int:
    """The slowest average rate accepted, bytes per second: :data:`MIN_RATE_ENV`, else 4 kB/s."""
    return _amount(MIN_RATE_ENV, DEFAULT_MIN_RATE, "4k")


def approx_limit(size_mb: float | None) -> int | None:
    """The size bound implied by an approximate size in MB (None when there is none)."""
    if size_mb is None or not size_mb > 0:
        return None
    return math.ceil(size_mb * 10**6 * APPROX_MARGIN) + 10**6


def stall_seconds() -> float:
    """The stall deadline in seconds: :data:`STALL_ENV`, else 60."""
    raw = os.environ.get(STALL_ENV, "").strip()
    if not raw:
        return DEFAULT_STALL_S
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0 or math.isinf(value):
        raise ConfigError(f"{STALL_ENV}={raw!r} is not a positive number of seconds")
    return value


class StallWatch:
    """Tells a download that has made too little progress lately from a slow but moving one."""

    def __init__(self, seconds: float, rate: int | None = None) -> None:
        self.seconds = seconds
        self.rate = rate  # the slowest average accepted after the first window (None: no floor)
        self._start = self._begun = time.monotonic()
        self._bytes = self._total = 0
        self.too_slow = ""  # why, once :meth:`stalled` said True for the average rate

    def stalled(self, n: int) -> bool:
        """Count ``n`` new bytes; True once a whole window went by with too few of them, or once the
        average since the start fell below ``rate`` after the first window."""
        now = time.monotonic()
        self._bytes += n
        self._total += n
        if self._bytes >= STALL_MIN_BYTES:
            self._start, self._bytes = now, 0
        elif now - self._start >= self.seconds:
            return True
        elapsed = now - self._begun
        if self.rate is not None and elapsed >= self.seconds and self._total / elapsed < self.rate:
            self.too_slow = f"averaged {human(self._total / elapsed)}/s over {elapsed:.0f} s"
            return True
        return False


def human(n: float) -> str:
    """``1234567`` -> ``"1.2 MB"`` (decimal units, as download sizes are quoted)."""
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")  # pragma: no cover
