"""Setting a training run up: everything its loop (:mod:`imgtrans.training.trainer`) works on,
built and checked in an order chosen so that a run that cannot work says so before it writes:

1. a resumed run finds its checkpoint first (a run that cannot be resumed says so at once);
2. the recipe and the data are built and checked;
3. only then is the run directory created (or, resumed, checked to hold the same data);
4. the networks are placed, their optimizers and the data loader made, and a resumed run
   restored, its random streams last.

Every process of a distributed run executes all of it; only rank 0 writes.

What it builds from the config, and ``--init``, are :mod:`imgtrans.training.building`.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.checkpoint import Checkpoint, load_checkpoint
from ..core.config import TrainConfig
from ..core.dataset_catalog import DatasetCatalog
from ..core.interfaces import Metric, Recipe
from ..core.registry import Registry
from ..data.catalog import resolve_dataset
from ..data.robust import SkipBadItems
from ..util.terminal import warn_stderr
from . import rundir as rd
from .building import (
    apply_init,
    build_dataset,
    build_recipe,
    check_crop_size,
    check_generator_sizes,
    check_optimizers,
    preview_batch,
    validation_data,
)
from .checkpoints import BestKeeper, restore_training_checkpoint
from .data_order import EpochLoader, data_record, process_seed
from .optim import linear_decay
from .records import MetricsWindow, RunLog
from .resume import continue_run_dir, lock_and_find_checkpoint
from .rundir import RunLock
from .step_engine import ProcessGroup, StepEngine, prepare_networks
from .validation import validation_metrics


@dataclass
class Run:
    """A training run, set up: what its loop, checkpoints and records work on.

    ``step``, ``epoch`` and ``window`` change as it trains; what only rank 0 needs (``preview``,
    ``val_data``, ``val_metrics``, ``best``, ``data_record``) is None in the other processes, and
    their ``log`` writes nothing.
    """

    config: TrainConfig
    group: ProcessGroup
    device: torch.device
    precision: str
    console: Any
    recipe: Recipe
    recipe_plugin: str  # the plugin that registered the recipe, named when its step fails
    engine: StepEngine
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, Any]
    memory_format: torch.memory_format  # of input batches
    dataset: SkipBadItems
    loader: EpochLoader
    preview: dict[str, torch.Tensor] | None  # the fixed batch of the preview images
    val_data: SkipBadItems | None
    run_dir: Path
    data_record: dict[str, Any] | None  # which data, recorded in every checkpoint
    log: RunLog
    window: MetricsWindow
    total_epochs: int
    total_steps: int
    step: int = 0
    epoch: int = 0  # the epoch in progress (epochs done, between epochs)
    start_batch: int = 0  # batches of the first epoch consumed before the checkpoint resumed from
    val_metrics: dict[str, Metric] | None = None  # what validation scores with (run.val_metrics)
    best: BestKeeper | None = None  # the best checkpoint by run.keep_best (training/checkpoints.py)

    @property
    def main(self) -> bool:
        return self.group.is_main

    @property
    def steps_per_epoch(self) -> int:
        return len(self.loader)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_up(config: TrainConfig, registry: Registry, catalog: DatasetCatalog, console: Any, group: ProcessGroup,
           device: torch.device, precision: str, *, overwrite: bool, resume: bool, locks: list[RunLock],
           allow_data_change: bool = False) -> Run:
    """Build, check and open everything for training ``config`` (``resume``: continue its run
    directory from the newest checkpoint). The lock on the run directory that rank 0 takes is
    appended to ``locks``, for the caller to release however the run ends."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop size: the autotuned kernels are reused
    main = group.is_main
    ckpt = _resume_checkpoint(config, group, locks) if resume else None
    seed_everything(config.run.seed)  # the same initial weights in every process
    recipe = build_recipe(config, registry)
    check_crop_size(recipe, config)
    check_generator_sizes(recipe, config, registry)
    # a dry run of configure_optimizers (the real ones are made once the networks are placed), so a
    # recipe whose optimizers hold parameters no checkpoint saves is refused before anything is written
    check_optimizers(recipe, recipe.configure_optimizers(config.optim.lr, (config.optim.beta1, config.optim.beta2)),
                     config.recipe.name)
    if config.run.init and ckpt is None:  # fine-tuning: start slots from existing weights
        apply_init(recipe, config.run.init)
    say = (lambda msg: console.print(msg)) if console is not None and main else None
    dataset = SkipBadItems(
        build_dataset(config, registry, catalog, split=config.data.split, train=True, progress=say),
        strict=config.data.strict, warn=warn_stderr)
    preview = val_data = val_metrics = None
    if main:
        preview = {k: v.to(device) for k, v in preview_batch(config, registry, catalog, dataset).items()}
        val_data = validation_data(config, registry, catalog) if config.run.validate_every else None
        if val_data is not None:  # set metrics' image count and weights: checked before the run directory
            val_metrics = validation_metrics(config.run.val_metrics, val_data, config.run.validate_split,
                                             config.run.fid_weights)

    # only now, everything checked: a refused run leaves no run directory (or an unchanged one)
    recorded: list[dict[str, Any]] = []  # rank 0's record of the data

    def open_run_dir() -> str:
        root = resolve_dataset(config.data.source, catalog)
        recorded.append(data_record(root, config.data.split, Path(config.run.out) if config.run.out else None))
        if ckpt is not None:
            continue_run_dir(config, ckpt, recorded[0], allow_data_change=allow_data_change)
            return config.run.out
        run_dir, lock = prepare_run_dir(config, overwrite, root)
        locks.append(lock)
        return str(run_dir)

    config.run.out = group.from_main(open_run_dir)
    run_dir = Path(config.run.out)
    log = RunLog(run_dir if main else None, tensorboard=config.run.tensorboard)

    memory_format = prepare_networks(recipe, config, device, group)
    engine = StepEngine(precision, device, group, recipe.networks().values())
    recipe.use_engine(engine)
    optim = config.optim
    optimizers = recipe.configure_optimizers(optim.lr, (optim.beta1, optim.beta2))
    check_optimizers(recipe, optimizers, config.recipe.name)
    schedulers = {name: linear_decay(o, optim.epochs, optim.epochs_decay) for name, o in optimizers.items()}
    loader = EpochLoader(dataset, seed=config.run.seed, batch_size=config.data.batch_size,
                         num_workers=config.data.num_workers, rank=group.rank, world_size=group.world_size,
                         pin_memory=device.type == "cuda")
    total_epochs = optim.epochs + optim.epochs_decay
    total_steps = total_epochs * len(loader)
    if optim.max_steps is not None:
        total_steps = min(total_steps, optim.max_steps)
    run = Run(config=config, group=group, device=device, precision=precision, console=console, recipe=recipe,
              recipe_plugin=registry.get("recipe", config.recipe.name).plugin, engine=engine, optimizers=optimizers,
              schedulers=schedulers, memory_format=memory_format, dataset=dataset, loader=loader, preview=preview,
              val_data=val_data, run_dir=run_dir, data_record=recorded[0] if recorded else None, log=log,
              window=MetricsWindow(group, device), total_epochs=total_epochs, total_steps=total_steps)
    if group.distributed:  # dropout masks differ between processes, like their data
        seed_everything(process_seed(config.run.seed, group.rank))
    if ckpt is not None:
        run.start_batch = restore_training_checkpoint(run, ckpt)
    if val_metrics is not None:
        run.val_metrics = val_metrics
        if config.run.keep_best is not None:
            run.best = BestKeeper.for_run(config.run.keep_best, val_metrics, run_dir)
            if ckpt is not None:  # the best so far, whichever checkpoint the run resumes from
                run.best.restore(recipe, warn_stderr)
    run.log.note({"device": str(device), "precision": precision, "processes": group.world_size})  # what "auto" became
    if say is not None:
        say(f"training on {device} in {precision}" + (f" with {group.world_size} processes"
                                                      if group.distributed else ""))
    run.window.start = time.perf_counter()
    return run


def _resume_checkpoint(config: TrainConfig, group: ProcessGroup, locks: list[RunLock]) -> Checkpoint:
    """The checkpoint to resume from: rank 0 locks the run and reads the checkpoint once; the other
    processes read the file it names."""
    found: list[Checkpoint] = []

    def lock_and_find() -> str:
        lock = RunLock(config.run.out)
        locks.append(lock)
        found.append(lock_and_find_checkpoint(config, lock))
        return found[0].metadata["path"]

    path = group.from_main(lock_and_find)
    ckpt = found[0] if found else load_checkpoint(path)
    ckpt.metadata["path"] = path
    return ckpt


def prepare_run_dir(config: TrainConfig, overwrite: bool, data_root: Path | None = None) -> tuple[Path, RunLock]:
    """Create the run directory (``--overwrite``: replace an earlier run there; training/rundir.py
    says what it may delete) and write config.toml; returns it with its lock, held for the run."""
    out = config.run.out or f"runs/{config.recipe.name}-{Path(config.data.source).name}-{datetime.now():%Y%m%d-%H%M%S}"
    run_dir = Path(out)
    config.run.out = str(run_dir)
    lock = RunLock(run_dir)
    rd.open_run_dir(run_dir, overwrite, data_root, lock, config.to_toml())
    return run_dir, lock
