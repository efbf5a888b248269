"""The best checkpoint of a run by one validation figure (``--keep-best METRIC``, ``run.keep_best``).

Papers in this field report the best epoch, so a run can keep it next to its newest checkpoints.
Whenever validation scores strictly better than ever before in the run (``better``: the metric's
declared direction), two files are rewritten, each atomically:

* ``checkpoints/best.safetensors``: every network of the recipe (discriminators too, so training
  can go on from it with ``--init``), described like any checkpoint, plus the metadata field
  ``best``: ``{"metric", "score", "better", "step", "epoch"}``.  No optimizer or RNG state: a run
  resumes from its newest checkpoint, never from its best.
* ``model_best.safetensors``: the generators only, self-describing like ``model.safetensors``
  (``imgtrans translate --model RUN/model_best.safetensors``), with the same ``best`` field.

The checkpoint is written first and is the record: a resumed run reads its best-so-far back from
it, so only a strictly better score replaces it, even when it was written after the step
checkpoint the run resumes from; a model file left behind by a kill between the two writes is
rewritten from it.  Only rank 0 validates, so only rank 0 keeps the best (no collective calls).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..core.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from ..core.config import keep_best_key
from ..core.interfaces import Metric, Recipe
from ..core.model_file import model_metadata, model_networks
from ..util.errors import CheckpointError, ConfigError, RunError
from .checkpointing import RunState

BEST = "best.safetensors"
MODEL_BEST = "model_best.safetensors"
#: the metadata field of both files
BEST_KEY = "best"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


class BestKeeper:
    """The best-so-far of one validation figure (``key``, as in metrics.jsonl) and its files."""

    def __init__(self, key: str, better: str, run_dir: Path):
        self.key, self.better, self.run_dir = key, better, Path(run_dir)
        self.score: float | None = None
        self.step: int | None = None

    @classmethod
    def for_run(cls, keep_best: str, metrics: Mapping[str, Metric], run_dir: Path) -> BestKeeper:
        """The keeper of ``run.keep_best`` (a resolved config's, e.g. ``val_BtoA_fid``)."""
        _, name = keep_best_key(keep_best)
        if name not in metrics:
            raise ConfigError(f"--keep-best {keep_best}: {name} is not among the validation metrics "
                              f"({', '.join(metrics)}); add --val-metric {name}")
        return cls(keep_best, metrics[name].better, run_dir)

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoints" / BEST

    @property
    def model_path(self) -> Path:
        return self.run_dir / MODEL_BEST

    def improves(self, score: Any) -> bool:
        """Strictly better than the best so far (NaN never is; anything is better than nothing)."""
        if not _number(score):
            return False
        if self.score is None:
            return True
        return score < self.score if self.better == "lower" else score > self.score

    def update(self, record: Mapping[str, Any], run: RunState) -> bool:
        """Keep the networks of ``run`` as the best when ``record`` (a validation record) beats the
        best so far; returns whether it did."""
        if self.key not in record:
            reported = ", ".join(k for k in record if k.startswith("val_")) or "nothing"
            raise RunError(f"--keep-best {self.key}: validation reported no {self.key} (it reported {reported})")
        score = record[self.key]
        if not self.improves(score):
            return False
        meta = model_metadata(run.config, run.recipe, epoch=max(run.epoch, 1), step=run.step,
                              world_size=run.group.world_size)
        meta[BEST_KEY] = {"metric": self.key, "score": float(score), "better": self.better, "step": run.step,
                          "epoch": run.epoch}
        save_checkpoint(self.checkpoint_path, run.recipe.networks(), meta)  # the record first
        save_checkpoint(self.model_path, model_networks(run.recipe), meta)
        self.score, self.step = float(score), run.step
        return True

    def restore(self, recipe: Recipe, warn: Callable[[str], None]) -> None:
        """A resumed run's best-so-far, from ``checkpoints/best.safetensors`` (none when it is absent)."""
        path = self.checkpoint_path
        if not path.is_file():
            return
        try:
            best = read_metadata(path).get(BEST_KEY)
        except CheckpointError as exc:
            warn(f"{exc}; the next validation writes a new {BEST}")
            return
        if not isinstance(best, dict) or best.get("metric") != self.key or not _number(best.get("score")) \
                or not isinstance(best.get("step"), int):
            warn(f"{path} records no {self.key} score; the next validation replaces it")
            return
        self.score, self.step = float(best["score"]), best["step"]
        self._repair_model(path, best, recipe)

    def _repair_model(self, path: Path, best: dict[str, Any], recipe: Recipe) -> None:
        """Rewrite ``model_best.safetensors`` from the best checkpoint unless it is that model."""
        try:
            if read_metadata(self.model_path).get(BEST_KEY) == best:
                return
        except CheckpointError:  # missing or damaged: rewritten
            pass
        ckpt = load_checkpoint(path)
        meta = {k: v for k, v in ckpt.metadata.items() if k not in ("format", "imgtrans_version", "networks", "path")}
        save_checkpoint(self.model_path, {slot: ckpt.state_dict(slot) for slot in model_networks(recipe)}, meta)


def best_summary(run_dir: Path) -> dict[str, Any] | None:
    """The ``best`` record of a run's best checkpoint, or None (no such file, or unreadable)."""
    path = Path(run_dir) / "checkpoints" / BEST
    if not path.is_file():
        return None
    try:
        best = read_metadata(path).get(BEST_KEY)
    except CheckpointError:
        return None
    return best if isinstance(best, dict) else None
