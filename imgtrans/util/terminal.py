"""What imgtrans says on stderr: one-line warnings, and a transient progress bar for long file work.

Silent when disabled or when stderr is not a terminal, so logs and CI output stay clean, unless a
bar asks for ``lines``: then a log gets that many whole lines instead (a bar drawn into a log is
cut to 80 columns with an ellipsis).  rich is imported only when a bar is actually shown, which
keeps ``import imgtrans`` cheap.
"""
from __future__ import annotations

import sys
import time
from typing import Any


def rich_console(stderr: bool = False) -> Any:
    """A rich console that wraps lines only for a terminal: a log file or a pipe gets every message
    on one line, so no path is cut mid-line (rich would wrap at 80 columns there)."""
    from rich.console import Console

    console = Console(stderr=stderr)
    if not console.is_terminal:
        console.soft_wrap = True
    return console


def warn_stderr(message: str) -> None:
    """One warning line on stderr, in the form every imgtrans warning takes."""
    print(f"imgtrans: warning: {message}", file=sys.stderr, flush=True)


class StderrBar:
    """``unit="bytes"`` shows size and speed; ``unit="items"`` shows a count.  ``lines``: when stderr
    is not a terminal, print that many whole lines at even steps of a known ``total``
    (``eval: 9/36 (25%), 3.1/s``) instead of nothing."""

    def __init__(self, enabled: bool, label: str, *, total: int | None = None, unit: str = "items",
                 lines: int = 0):
        self._progress: Any = None
        self._label, self._total, self._done, self._shown = label, total, 0, 0
        self._lines = lines if enabled and not sys.stderr.isatty() else 0
        self._start = time.perf_counter()
        if enabled and sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            counts = [DownloadColumn(), TransferSpeedColumn()] if unit == "bytes" else [MofNCompleteColumn()]
            self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), *counts,
                                      TimeRemainingColumn(), console=rich_console(stderr=True), transient=True)
            self._task = self._progress.add_task(label, total=total)

    def __enter__(self) -> "StderrBar":
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, n: int = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)
        self._done += n
        self._line()

    def reset(self, completed: int, total: int | None) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=completed, total=total)
        self._done, self._total = completed, total
        self._shown = min(self._shown, self._lines)

    def _line(self) -> None:
        """The next of the log's whole lines, once its share of the total is done."""
        if not self._lines or not self._total or self._shown >= self._lines:
            return
        if self._done * self._lines < (self._shown + 1) * self._total:
            return
        while self._shown < self._lines and self._done * self._lines >= (self._shown + 1) * self._total:
            self._shown += 1
        seconds = time.perf_counter() - self._start
        rate = f", {self._done / seconds:.1f}/s" if seconds > 0 else ""
        print(f"{self._label}: {self._done}/{self._total} ({100 * self._done // self._total}%){rate}",
              file=sys.stderr, flush=True)
