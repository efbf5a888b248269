"""The training checkpoint: what it holds beyond the model, written after a step and restored by
``train --resume`` so that the run goes on exactly as if it had never stopped.

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
* ``data``: which data the run trains on (:mod:`imgtrans.training.datarecord`).

The data order needs no saved state (:mod:`imgtrans.training.data_order`).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch

from ..core.checkpoint import Checkpoint, load_checkpoint, read_metadata, save_checkpoint
from ..core.checkpoint_files import LAST, publish, step_checkpoints, step_path
from ..core.model_file import model_metadata
from ..core.training_state import (
    load_optimizer_state,
    load_scheduler_state,
    optimizer_state,
    rng_state,
    scheduler_state,
    set_rng_state,
)
from ..util.errors import CheckpointError
from ..util.terminal import warn_stderr
from .datarecord import RECORD_KEY


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

