"""The training checkpoints of a run: the newest ones, written after a step and restored by
``train --resume`` so that the run goes on exactly as if it had never stopped, and the best one
by a validation figure (``--keep-best``).

This module is the one place that defines the layout.  A training checkpoint
(``RUN/checkpoints/step_00001234.safetensors``, :mod:`imgtrans.core.checkpoint_files`) is an
ordinary imgtrans checkpoint (each network under its prefix, the generators described in the
metadata) plus these tensor groups, nothing pickled:

* ``optim/<name>``: optimizer ``name``'s per-parameter state, ``<param index>.<key>`` (Adam's
  moments and step counts);
* ``rng``: rank 0's global RNG states, ``torch`` (the CPU generator), ``cuda<i>`` and ``numpy``
  (the MT19937 key); ``rng_process<r>``: the same for process ``r`` >= 1 of a distributed run;
* ``recipe``: the recipe's own state (``Recipe.state_dict()``: image pools, counters; rank 0's);

and the metadata field ``training_state`` (JSON):

* ``version`` (:data:`STATE_VERSION`); ``step``; ``epoch`` (epochs done); ``batch`` (batches of
  the next epoch each process had consumed); ``processes`` (how many wrote it);
* ``optimizers``: each optimizer's ``param_groups`` and non-tensor state; ``schedulers``: each
  learning-rate scheduler's position; ``scaler``: the fp16 loss scale (the step engine's state);
* ``rng``: the JSON rest of rank 0's numpy and Python RNG states; ``rng_processes``: the same
  for ranks 1, 2, ...;
* ``window``: the metrics window in progress, summed over processes (``sums``, ``images``,
  ``last_logged``); ``skipped``: the unreadable items skipped so far (index -> path);
* ``data``: which data the run trains on (:mod:`imgtrans.training.data_order`).

The data order needs no saved state (:mod:`imgtrans.training.data_order`).

**The best checkpoint** of a run by one validation figure (``--keep-best METRIC``,
``run.keep_best``).  Papers in this field report the best epoch, so a run can keep it next to its
newest checkpoints.  Whenever validation scores strictly better than ever before in the run
(``better``: the metric's declared direction), two files are rewritten, each atomically:

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
from typing import Any, Protocol

import torch

from ..core.checkpoint import Checkpoint, load_checkpoint, read_metadata, save_checkpoint
from ..core.checkpoint_files import LAST, publish, step_checkpoints, step_path
from ..core.config import keep_best_key
from ..core.interfaces import Metric, Recipe
from ..core.model_file import model_metadata, model_networks
from ..core.training_state import (
    load_optimizer_state,
    load_scheduler_state,
    optimizer_state,
    rng_state,
    scheduler_state,
    set_rng_state,
)
from ..util.errors import CheckpointError, ConfigError, RunError
from ..util.terminal import warn_stderr
from .data_order import RECORD_KEY

class RunState(Protocol):
    """What saving, restoring and keeping the best checkpoint read of a run (:class:`.setup.Run`
    has all of it); declared here so that this module needs nothing above it."""

    config: Any
    group: Any
    device: torch.device
    recipe: Any
    engine: Any
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, Any]
    dataset: Any
    run_dir: Path
    data_record: dict[str, Any] | None
    log: Any
    window: Any
    step: int
    epoch: int

STATE_KEY = "training_state"
STATE_VERSION = 1

#: the fields of ``training_state`` that a resume reads, and their JSON types
_STATE_FIELDS = {"step": int, "epoch": int, "batch": int, "optimizers": dict, "schedulers": dict, "rng": dict,
                 "window": dict, "skipped": dict}


def save_training_checkpoint(run: RunState, epochs_done: int, batch: int) -> None:
    """A step checkpoint with everything needed to continue after this step (also last.safetensors).
    Every process takes part (RNG states and skipped items are gathered); rank 0 writes."""
    group = run.group
    rng_tensors, rng_meta = rng_state()
    per_process = group.gather((rng_tensors, rng_meta, dict(run.dataset.skipped)))
    window_sums = group.sum(run.window.sums, run.device)  # whole-run totals; each process restores a share
    if not group.is_main:
        return
    tensors: dict[str, dict[str, torch.Tensor]] = {"rng": rng_tensors}
    skipped: dict[int, str] = {}
    for rank, (tensors_r, _, skipped_r) in enumerate(per_process):
        skipped.update(skipped_r)
        if rank:
            tensors[f"rng_process{rank}"] = tensors_r
    optim_meta = {}
    for name, opt in run.optimizers.items():
        tensors[f"optim/{name}"], optim_meta[name] = optimizer_state(opt)
    state = {"version": STATE_VERSION, "step": run.step, "epoch": epochs_done, "batch": batch,
             "optimizers": optim_meta,
             "schedulers": {name: scheduler_state(s) for name, s in run.schedulers.items()},
             "scaler": run.engine.state_dict(),
             "rng": rng_meta,
             "processes": group.world_size,
             "rng_processes": [meta for _, meta, _ in per_process[1:]],
             "window": {"sums": window_sums, "images": run.window.images * group.world_size,
                        "last_logged": run.window.last_logged},
             "skipped": {str(k): v for k, v in skipped.items()},
             RECORD_KEY: run.data_record}
    tensors["recipe"] = run.recipe.state_dict()  # image pools and the like (rank 0's)
    meta = model_metadata(run.config, run.recipe, epoch=max(run.epoch, 1), step=run.step,
                          world_size=group.world_size)
    path = save_checkpoint(step_path(run.run_dir, run.step), run.recipe.networks(),
                           {**meta, STATE_KEY: state}, state=tensors)
    publish(path, run.config.run.keep_checkpoints)


def restore_training_checkpoint(run: RunState, ckpt: Checkpoint) -> int:
    """Continue ``run`` from ``ckpt``; returns the batches of the current epoch already consumed."""
    group, device = run.group, run.device
    state = ckpt.metadata[STATE_KEY]
    for name, net in run.recipe.networks().items():
        net.load_state_dict(ckpt.state_dict(name))
    for name, opt in run.optimizers.items():
        load_optimizer_state(opt, ckpt.state.get(f"optim/{name}", {}), state["optimizers"][name])
        load_scheduler_state(run.schedulers[name], state["schedulers"][name])
    run.engine.load_state_dict(state.get("scaler", {}))
    run.recipe.load_state_dict(ckpt.state.get("recipe", {}))
    run.step, run.epoch = state["step"], state["epoch"]
    window = state["window"]
    share = group.world_size
    run.window.sums = {k: torch.tensor(v / share, dtype=torch.float32, device=device)
                       for k, v in window["sums"].items()}
    run.window.images, run.window.last_logged = window["images"] // share, window["last_logged"]
    run.dataset.skipped.update({int(k): v for k, v in state["skipped"].items()})
    run.log.note({"resumed_from_step": run.step, "checkpoint": Path(ckpt.metadata["path"]).name})
    saved_processes = state.get("processes", 1)
    if saved_processes != group.world_size:
        if group.is_main:
            warn_stderr(f"the checkpoint was written by {saved_processes} process(es), this run has "
                        f"{group.world_size}: the data shards and random streams start afresh from here")
        return state["batch"] * saved_processes // group.world_size
    if group.rank == 0:  # last: nothing may draw after it
        set_rng_state(ckpt.state.get("rng", {}), state["rng"])
    else:
        set_rng_state(ckpt.state.get(f"rng_process{group.rank}", {}), state["rng_processes"][group.rank - 1])
    return state["batch"]


def check_state(ckpt: Checkpoint, path: Path) -> None:
    """Raise :class:`CheckpointError` unless ``ckpt`` holds a training state a resume can use
    (valid JSON of the wrong shape would otherwise fail half-way through restoring it)."""
    state = ckpt.metadata.get(STATE_KEY)
    if STATE_KEY not in ckpt.metadata:
        raise CheckpointError(f"{path} holds no training state (written by an older imgtrans?)")
    if not isinstance(state, dict) or not isinstance(state.get("version"), int):
        raise CheckpointError(f"{path}: its training state is malformed")
    if state["version"] != STATE_VERSION:
        return  # an unsupported version is reported as such by the caller
    wrong = [k for k, kind in _STATE_FIELDS.items() if not isinstance(state.get(k), kind) or isinstance(state[k], bool)]
    window = state.get("window")
    if isinstance(window, dict) and not (isinstance(window.get("sums"), dict) and isinstance(window.get("images"), int)
                                         and isinstance(window.get("last_logged"), int)):
        wrong.append("window")
    rng = ckpt.state.get("rng", {})
    if "torch" not in rng or "numpy" not in rng:
        wrong.append("rng tensors")
    if wrong or state["step"] < 0:
        raise CheckpointError(f"{path}: its training state is malformed ({', '.join(wrong) or 'step'})")


def saved_step(path: Path) -> int | None:
    """The step a training checkpoint was taken at, read from its metadata alone (None when the
    file or its training state cannot be read)."""
    try:
        step = read_metadata(path)[STATE_KEY]["step"]
    except (CheckpointError, KeyError, TypeError):
        return None
    return step if isinstance(step, int) else None


def latest_checkpoint(run_dir: Path, warn: Callable[[str], None]) -> Checkpoint:
    """The newest readable training checkpoint of ``run_dir`` (last.safetensors included: where
    hard links are not possible it is a copy, and may outlive a damaged step file); unreadable
    newer ones are warned about and removed (an interrupted run never leaves one: writes are
    atomic; a full disk or a damaged file might)."""
    run_dir = Path(run_dir)
    candidates = step_checkpoints(run_dir)
    last = run_dir / "checkpoints" / LAST
    if last.is_file() and not any(last.samefile(p) for _, p in candidates):
        step = saved_step(last)
        candidates.append((-1 if step is None else step, last))
    if not candidates:
        raise CheckpointError(f"{run_dir} has no checkpoint to resume from (it stopped before its first one; "
                              "run.checkpoint_every_steps sets how often they are written)")
    candidates.sort(key=lambda sp: (-sp[0], sp[1].name == LAST))  # newest first; a step file before its copy
    bad: list[Path] = []
    for _, path in candidates:
        try:
            ckpt = load_checkpoint(path)
            check_state(ckpt, path)
        except CheckpointError as exc:
            warn(f"{exc}; resuming from an earlier checkpoint")
            bad.append(path)
            continue
        if ckpt.metadata[STATE_KEY].get("version") != STATE_VERSION:
            raise CheckpointError(f"{path}: unsupported training state version {ckpt.metadata[STATE_KEY].get('version')}")
        for path_ in bad:  # newer than the one we resume from, and unusable
            if path_.name != LAST:
                path_.unlink(missing_ok=True)
        ckpt.metadata["path"] = str(path)
        return ckpt
    raise CheckpointError(f"none of the {len(candidates)} checkpoint(s) in {run_dir / 'checkpoints'} can be read")


# -- the best checkpoint (--keep-best) -------------------------------------------------------------

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
