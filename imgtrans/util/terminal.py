"""What imgtrans says on stderr: one-line warnings, and a transient progress bar for long file work.

Silent when disabled or when stderr is not a terminal, so logs and CI output stay clean; rich is
imported only when a bar is actually shown, which keeps ``import imgtrans`` cheap.
"""
from __future__ import annotations

import sys
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
    """``unit="bytes"`` shows size and speed; ``unit="items"`` shows a count."""

    def __init__(self, enabled: bool, label: str, *, total: int | None = None, unit: str = "items"):
        self._progress: Any = None
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

    def reset(self, completed: int, total: int | None) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=completed, total=total)
