"""A rich progress bar with epoch, losses and throughput (silent when disabled or not a terminal)."""
from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainingProgress:
    def __init__(self, total_steps: int, total_epochs: int, *, enabled: bool = True, console: Console | None = None,
                 completed: int = 0):
        self.total_epochs = total_epochs
        self._progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[losses]}"),
            TextColumn("[cyan]{task.fields[speed]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled,
        )
        self._task = self._progress.add_task("train", total=total_steps, completed=completed, epoch=0, epochs=total_epochs,
                                             losses="", speed="")

    def __enter__(self) -> "TrainingProgress":
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.__exit__(*exc)

    def start_epoch(self, epoch: int) -> None:
        self._progress.update(self._task, epoch=epoch)

    def show(self, record: dict[str, Any]) -> None:
        losses = " ".join(f"{k}={v:.3f}" for k, v in record.items()
                          if k not in ("step", "epoch", "img_per_s", "lr") and not k.startswith("lr_")
                          and isinstance(v, float))
        self._progress.update(self._task, losses=losses, speed=f"{record['img_per_s']:.2f} img/s")

    def advance(self) -> None:
        self._progress.advance(self._task)
