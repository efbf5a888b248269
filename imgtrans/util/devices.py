"""Where the work runs: ``--device`` names -> ``torch.device`` (refused in one line when the machine
cannot honour them), and how many CPU threads it gets (``--threads``).

Shared by train, translate, eval and serve, so every command accepts the same names (``auto``,
``cpu``, ``cuda``, ``cuda:N``), says the same thing about a missing GPU instead of a CUDA
traceback, and leaves cores that other work is using alone.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import torch

from .errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else must name a device that exists here."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name} was requested but no CUDA device is available "
                              f"(use --device cpu or auto)")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(f"--device {name}: this machine has {count} CUDA device(s) (cuda:0 to cuda:{count - 1})")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {name} was requested but MPS is not available (use --device cpu or auto)")
    elif device.type not in ("cpu", "mps"):
        raise ConfigError(f"unsupported device {name!r}; use auto, cpu, cuda or cuda:N")
    return device


#: printed with a reduced thread count: how to choose it instead
THREADS_ADVICE = "--threads N or OMP_NUM_THREADS=N to choose"


@dataclass(frozen=True)
class ThreadChoice:
    """How many intra-op threads torch uses, and why (printed when fewer than the cores)."""

    threads: int
    cores: int
    reason: str

    @property
    def worth_saying(self) -> bool:
        """Cores were left out by the default, not by the user's own ``--threads`` / ``OMP_NUM_THREADS``."""
        return self.threads < self.cores and self.reason not in ("--threads", "OMP_NUM_THREADS")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def other_runnable(samples: int = 5, interval: float = 0.02) -> float | None:
    """Tasks running or ready to run besides this one, averaged over ``samples`` readings of
    ``/proc/stat`` (Linux); None where it cannot be read.  The load average is not used: it trails
    by a minute, so it would still count a run that has just ended."""
    counts = []
    for i in range(samples):
        try:
            with open("/proc/stat", encoding="ascii") as stat:
                counts += [int(line.split()[1]) for line in stat if line.startswith("procs_running")]
        except (OSError, ValueError, IndexError):
            return None
        if i + 1 < samples:
            time.sleep(interval)
    return max(0.0, sum(counts) / len(counts) - 1) if counts else None


def choose_threads(requested: int | None = None, *, cores: int | None = None,
                   others: float | None = None) -> ThreadChoice:
    """``requested`` if given; else what ``OMP_NUM_THREADS`` set; else one thread per core that no
    other task is using.  On a busy 2-core machine two intra-op threads ran 5-9x slower than one
    (each parallel region waits for the thread the scheduler took away): benchmarks/threads.py."""
    cores = cores or usable_cores()
    if requested:
        return ThreadChoice(requested, cores, "--threads")
    if os.environ.get("OMP_NUM_THREADS"):
        return ThreadChoice(torch.get_num_threads(), cores, "OMP_NUM_THREADS")
    others = other_runnable() if others is None else others
    if others is None:
        return ThreadChoice(cores, cores, "all cores")
    free = max(1, min(cores, round(cores - others)))
    return ThreadChoice(free, cores, f"about {others:.1f} other task(s) running" if free < cores else "all cores")


def set_threads(requested: int | None = None) -> ThreadChoice:
    """Apply :func:`choose_threads` to torch; returns the choice for the caller to report."""
    choice = choose_threads(requested)
    torch.set_num_threads(choice.threads)
    return choice
