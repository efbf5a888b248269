"""What a run records as it trains, and what it shows: training records of losses averaged over
a window of steps, written to ``metrics.jsonl`` (and TensorBoard) by rank 0, the stop of a run
whose losses diverged, preview grids, and the progress bar.

Losses are summed on the device between two records and summed over processes only when a
record is made, so training costs no synchronisation per step.

The run directory's own files: :mod:`imgtrans.training.rundir`; the page and the loss curve drawn
from these records: :mod:`imgtrans.training.report`.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..core.interfaces import Recipe
from ..data.images import image_grid, save_image, to_pixels
from .report import TensorBoardLogger
from .rundir import COLUMNS_FILE, diverged_note
from .step_engine import ProcessGroup


class MetricsWindow:
    """The losses of the steps since the last training record (of this process).

    A checkpoint saves the window in progress and a resumed run restores it, so the records of a
    resumed run equal those of the uninterrupted one (:mod:`imgtrans.training.checkpoints`).
    """

    def __init__(self, group: ProcessGroup, device: torch.device):
        self.group, self.device = group, device
        self.sums: dict[str, torch.Tensor] = {}
        self.images = 0  # images trained on in the window
        self.last_logged = 0  # the step of the last record
        self.start = time.perf_counter()

    def add(self, losses: Mapping[str, torch.Tensor], images: int) -> None:
        for k, v in losses.items():  # summed on the device: no synchronisation per step
            self.sums[k] = self.sums.get(k, 0) + v.float()
        self.images += images

    def record(self, step: int, epoch: int, lr: dict[str, float], run_dir: Path) -> dict[str, Any]:
        """The training record of the window ending at ``step``: losses averaged over its steps and
        all processes, throughput and learning rate. Every process must call it (the sums are
        added up across processes); all then see the same record, so a loss that became NaN or
        infinite stops every process alike (:func:`check_finite`)."""
        group = self.group
        elapsed = time.perf_counter() - self.start
        n = step - self.last_logged
        totals = group.sum({**self.sums, "_images": float(self.images)}, self.device)
        images = totals.pop("_images")
        record = {"step": step, "epoch": epoch,
                  **{k: round(v / (n * group.world_size), 5) for k, v in totals.items()},
                  "img_per_s": round(images / max(elapsed, 1e-9), 3),
                  **learning_rates(lr)}
        check_finite(record, lambda: diverged_note(run_dir, self.last_logged))
        return record

    def restart(self, step: int) -> None:
        """Begin the next window after the record of ``step``."""
        self.sums, self.images, self.start = {}, 0, time.perf_counter()
        self.last_logged = step


def check_finite(record: dict[str, Any], checkpoints: Callable[[], str] | None = None) -> None:
    """Stop a diverged run; ``checkpoints`` says which checkpoint it leaves."""
    bad = [k for k, v in record.items() if isinstance(v, float) and not np.isfinite(v)]
    if bad:
        left = f"{checkpoints()} " if checkpoints is not None else ""
        raise FloatingPointError(f"loss became NaN or infinite ({', '.join(bad)}) at step {record['step']}; "
                                 f"{left}Try a lower --lr.")


class RunLog:
    """Where a run's records go: ``metrics.jsonl`` (appended to, so a resumed run continues it)
    and, with ``tensorboard``, TensorBoard scalars. Only rank 0 writes: without a ``run_dir``
    (the other processes) every call does nothing."""

    def __init__(self, run_dir: Path | None, *, tensorboard: bool = False):
        self.tensorboard = TensorBoardLogger.create(run_dir) if run_dir is not None and tensorboard else None
        self.jsonl = MetricsLog(run_dir / "metrics.jsonl") if run_dir is not None else None

    def write(self, record: dict[str, Any]) -> None:
        """A record of scores by step (training or validation): metrics.jsonl and TensorBoard."""
        self.note(record)
        if self.tensorboard is not None:
            self.tensorboard.log(record)

    def note(self, record: dict[str, Any]) -> None:
        """A record about the run (its set-up, a resume, skipped files): metrics.jsonl only."""
        if self.jsonl is not None:
            self.jsonl.write(record)

    def close(self) -> None:
        if self.jsonl is not None:
            self.jsonl.close()
        if self.tensorboard is not None:
            self.tensorboard.close()


def learning_rates(rates: dict[str, float]) -> dict[str, float]:
    """``lr`` when every optimizer has the same rate; otherwise one ``lr_<optimizer>`` per optimizer
    (a recipe may give its networks different rates: logging only the first would hide that)."""
    if len(set(rates.values())) <= 1:
        return {"lr": next(iter(rates.values()), 0.0)}
    return {f"lr_{name}": value for name, value in rates.items()}


# -- metrics.jsonl and preview grids ---------------------------------------------------------------

class MetricsLog:
    """Append-only JSON lines: one object per logged step, flushed so a crash loses nothing."""

    def __init__(self, path: Path):
        self.path = path
        self._fh = open(path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps({"time": round(time.time(), 3), **record}) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def save_preview(path: Path, columns: list[tuple[str, torch.Tensor]]) -> None:
    """The grid of captioned ``columns`` as a PNG, and the captions in ``columns.txt`` beside it."""
    save_image(to_pixels(image_grid([t.detach().float().cpu() for _, t in columns])), path)
    (path.parent / COLUMNS_FILE).write_text(" | ".join(name for name, _ in columns) + "\n", encoding="utf-8")


@torch.no_grad()
def write_preview(recipe: Recipe, batch: dict[str, torch.Tensor], path: Path) -> None:
    """The recipe's preview columns for ``batch``, computed with every network in eval mode (each
    module's mode is restored afterwards, so training goes on unchanged)."""
    modes = [(m, m.training) for net in recipe.networks().values() for m in net.modules()]
    for net in recipe.networks().values():
        net.eval()
    try:
        columns = recipe.previews(batch)
    finally:
        for module, training in modes:
            module.training = training
    save_preview(path, columns)


# -- the progress bar (a plain line per epoch when not a terminal) ----------------------------------

class TrainingProgress:
    """A live bar in a terminal; in a log (a pipe, a file) one whole line per finished epoch instead,
    since a bar drawn there is cut to 80 columns with an ellipsis."""

    def __init__(self, total_steps: int, total_epochs: int, *, enabled: bool = True, console: Console | None = None,
                 completed: int = 0):
        self.total_epochs = total_epochs
        self._console = console
        self._enabled = enabled and console is not None
        self._plain = self._enabled and not console.is_terminal
        self._epoch, self._last = 0, ""
        self._progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[losses]}"),
            TextColumn("[cyan]{task.fields[speed]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled or self._plain,
        )
        self._task = self._progress.add_task("train", total=total_steps, completed=completed, epoch=0, epochs=total_epochs,
                                             losses="", speed="")

    def __enter__(self) -> "TrainingProgress":
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.__exit__(*exc)
        self._epoch_line()

    def start_epoch(self, epoch: int) -> None:
        self._epoch_line()
        self._epoch = epoch
        self._progress.update(self._task, epoch=epoch)

    def _epoch_line(self) -> None:
        if self._plain and self._last:
            task = self._progress.tasks[0]  # counted even while the bar is not drawn
            self._console.print(f"epoch {self._epoch}/{self.total_epochs}: step {task.completed:.0f}/{task.total:.0f}, "
                                f"{self._last}", markup=False, highlight=False, soft_wrap=True)
            self._last = ""

    def show(self, record: dict[str, Any]) -> None:
        losses = " ".join(f"{k}={v:.3f}" for k, v in record.items()
                          if k not in ("step", "epoch", "img_per_s", "lr") and not k.startswith("lr_")
                          and isinstance(v, float))
        self._progress.update(self._task, losses=losses, speed=f"{record['img_per_s']:.2f} img/s")
        self._last = f"{losses}, {record['img_per_s']:.2f} img/s"

    def validation(self, epoch: int, scores: dict[str, Any]) -> None:
        """One line with the validation figures of every direction the recipe trains (``l1=...
        BtoA_l1=...``): above the live bar, or after the epoch's own line in a log."""
        if not self._enabled:
            return
        self._epoch_line()
        figures = " ".join(f"{key[len('val_'):]}={value:.4g}" for key, value in scores.items()
                           if key.startswith("val_") and not key.endswith("images") and isinstance(value, float))
        self._console.print(f"validation after epoch {epoch} ({scores.get('val_images', 0)} images): {figures}",
                            markup=False, highlight=False, soft_wrap=True)

    def advance(self) -> None:
        self._progress.advance(self._task)
