"""Keep freed memory in the process for reuse (glibc on Linux).

Why: a training step frees and re-allocates the same large buffers every time (weight casts
for autocast, gradients, activations).  glibc's malloc hands buffers above its mmap threshold
straight back to the kernel, so the next step takes a page fault on every 4 KiB of them (the
kernel zeroes each page): 4,000-16,000 faults and tens of milliseconds per paper-size pix2pix
step on a 2-core CPU.  Raising the mmap threshold to its maximum (32 MiB) and the trim threshold
to 1 GiB keeps those buffers in the heap: no faults after the first steps (benchmarks/train.py;
docs/training.md).  The cost is that the process keeps its peak memory until it exits, which is
what a training process does anyway.  CUDA memory has its own caching allocator; this only
concerns host memory.  It is the in-process equivalent of ``MALLOC_MMAP_THRESHOLD_`` and
``MALLOC_TRIM_THRESHOLD_``, which a user's environment still overrides.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's ceiling for this setting on 64-bit systems
TRIM_THRESHOLD = 2**30

_done = False


def keep_freed_memory() -> bool:
    """Tune glibc's malloc as described above; True if it was done (once per process)."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux") or any(
            k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done
