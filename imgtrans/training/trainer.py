"""The generic training loop: config -> recipe + components -> data -> steps -> run directory.

Everything a recipe should not have to care about lives here: seeding, devices, data loading,
the learning-rate schedule, logging, previews and checkpoints.
"""
from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from ..config import TrainConfig
from ..devices import resolve_device  # lived here; still importable from here
from ..data.catalog import DatasetCatalog, resolve_dataset
from ..data.detect import check_pairing, select_format
from ..data.robust import SkipBadItems, collate_skipping
from ..data.transforms import PairedTransform
from ..errors import ConfigError, DataError
from ..fileio import atomic_path
from ..data.views import UnpairedView
from ..interfaces import PairedDataset, Recipe, UnpairedDataset
from ..registry import Registry, plugin_code
from ..terminal import warn_stderr
from . import rundir as rd
from .checkpoint_files import publish, step_path
from .checkpointing import STATE_KEY, STATE_VERSION, latest_checkpoint
from .checks import check_run_settings
from .data_order import EpochSampler, SeededItems, loader_seed, process_seed
from .datarecord import RECORD_KEY, check_same_data, data_record
from .distributed import ProcessGroup, weights_digest
from .engine import StepEngine, resolve_precision
from .memory import keep_freed_memory
from .init_weights import apply_init
from .model_file import model_metadata, model_networks, recommended_norm_stats
from .outputs import MetricsLog, save_preview
from .progress import TrainingProgress
from .report import TensorBoardLogger, write_html
from .resume import trim_metrics
from .runlock import RunLock
from .schedule import linear_decay
from .state import load_optimizer_state, load_scheduler_state, optimizer_state, rng_state, scheduler_state, set_rng_state
from .validation import validate

PREVIEW_ROWS = 4


@dataclass
class TrainResult:
    run_dir: Path
    model_path: Path
    steps: int
    history: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0  # unreadable training items that were skipped (each warned about once)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_recipe(config: TrainConfig, registry: Registry) -> Recipe:
    """The recipe with its components built (a failure in plugin code reads as one line naming it)."""
    registered = registry.get("recipe", config.recipe.name)
    recipe_cls = registered.factory
    components = {
        slot: registry.create(recipe_cls.slots[slot].kind, spec.name, **spec.args)
        for slot, spec in config.components.items()
    }
    with plugin_code(registered.plugin, f"recipe {config.recipe.name!r}"):
        return recipe_cls(components, **config.recipe.args)


def build_dataset(config: TrainConfig, registry: Registry, catalog: DatasetCatalog, *, split: str,
                  train: bool, progress: Callable[[str], None] | None = None, native: bool = False) -> Dataset:
    """The dataset of ``split``; ``native`` skips resizing and cropping (validation at full size)."""
    data = config.data
    if not data.source:
        raise ConfigError("no training data: pass --data NAME|PATH")
    root = resolve_dataset(data.source, catalog, progress=progress)
    name = select_format(root, registry, catalog, data.format)
    check_pairing(registry.get("recipe", config.recipe.name), registry.get("dataset_format", name), data.source)
    recipe_cls = registry.get("recipe", config.recipe.name).factory
    first = recipe_cls.directions.get("AtoB") or next(iter(recipe_cls.directions.values()))
    g = config.components[first].args
    transform = None if native else PairedTransform(data.load_size, data.crop_size, flip=data.flip and train,
                                                    train=train, seed=config.run.seed)
    dataset = registry.create("dataset_format", name, root=root, split=split, transform=transform,
                              direction=data.direction, in_channels=g.get("in_channels", 3),
                              out_channels=g.get("out_channels", 3), max_items=data.max_items,
                              **({"cache": True} if data.cache else {}),
                              **({"seed": config.run.seed, "serial": not train} if name == "unpaired" else {}))
    if not recipe_cls.paired and isinstance(dataset, PairedDataset) and train:
        dataset = UnpairedView(dataset, seed=config.run.seed)  # B drawn independently of A
    return dataset




def prepare_run_dir(config: TrainConfig, overwrite: bool, data_root: Path | None = None) -> tuple[Path, RunLock]:
    """Create the run directory (``--overwrite``: replace an earlier run there; training/rundir.py
    says what it may delete) and write config.toml; returns it with its lock, held for the run."""
    out = config.run.out or f"runs/{config.recipe.name}-{Path(config.data.source).name}-{datetime.now():%Y%m%d-%H%M%S}"
    run_dir = Path(out)
    config.run.out = str(run_dir)
    lock = RunLock(run_dir)
    rd.open_run_dir(run_dir, overwrite, data_root, lock, config.to_toml())
    return run_dir, lock


def _preview_batch(config: TrainConfig, registry: Registry, catalog: DatasetCatalog, fallback: SkipBadItems) -> dict:
    """A fixed batch from the held-out split when there is one, so previews show generalisation.
    Unreadable items are skipped like in training (or stop the run, strict)."""
    candidates = []
    for split in ("val", "test"):
        try:
            ds = build_dataset(config, registry, catalog, split=split, train=False)
        except DataError:
            continue
        candidates.append(SkipBadItems(ds, strict=fallback.strict, warn=fallback.warn))
        break
    candidates.append(fallback)
    for ds in candidates:
        items = []
        for i in range(len(ds)):
            item = ds[i]
            if item is not None:
                items.append(item)
            if len(items) == PREVIEW_ROWS:
                break
        if items:
            return {k: torch.stack([it[k] for it in items]) for k in ("A", "B")}
    raise DataError(f"none of the {len(fallback)} training items could be read (see the warnings above)")


def _resume_run_dir(config: TrainConfig, lock: RunLock) -> Checkpoint:
    """Lock the run in ``config.run.out`` and find its newest readable checkpoint (rank 0 only)."""
    run_dir = Path(config.run.out)
    if not (run_dir / "config.toml").is_file():
        raise ConfigError(f"cannot resume {run_dir}: it holds no config.toml")
    lock.acquire()
    return latest_checkpoint(run_dir, warn_stderr)


def _continue_run_dir(config: TrainConfig, ckpt: Checkpoint, data: dict[str, Any]) -> None:
    """Once the resume is known to work (same data, everything built): tidy the run directory
    for its continuation and record its new length (rank 0 only: it writes)."""
    run_dir = Path(config.run.out)
    check_same_data(ckpt.metadata[STATE_KEY].get(RECORD_KEY), data, run_dir)
    rd.remove_stale_temp_files(run_dir)
    with atomic_path(run_dir / "config.toml") as tmp:  # an extended run records its new length
        tmp.write_text(config.to_toml(), encoding="utf-8")
    (run_dir / "previews").mkdir(exist_ok=True)
    trim_metrics(run_dir / "metrics.jsonl", ckpt.metadata[STATE_KEY]["step"])


def wants_channels_last(net: torch.nn.Module, config: TrainConfig, device: torch.device) -> bool:
    """Whether ``net`` trains in channels-last (NHWC) memory format: as set by ``run.channels_last``,
    and with ``auto``: every network on CUDA (tensor cores read NHWC); on the CPU only networks
    without transposed convolutions, whose oneDNN NHWC kernels are slower there (measured on a
    paper-size bf16 step: the PatchGAN in NHWC saves about 25 ms, the U-Net in NHWC costs about 80)."""
    if config.run.channels_last != "auto":
        return config.run.channels_last == "on"
    return device.type == "cuda" or not any(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules())


def place_networks(recipe: Recipe, config: TrainConfig, device: torch.device) -> torch.memory_format:
    """Move the recipe's networks to ``device`` in training mode and their memory format; returns
    the format for input batches (the generator's)."""
    formats = {name: torch.channels_last if wants_channels_last(net, config, device) else torch.contiguous_format
               for name, net in recipe.components.items()}
    for name, net in recipe.components.items():
        net.to(device=device, memory_format=formats[name]).train()
    first = recipe.directions.get("AtoB") or next(iter(recipe.directions.values()))
    return formats[first]


def check_processes(config: TrainConfig, world_size: int) -> None:
    """Settings that cannot work with ``world_size`` processes; checked before any process starts."""
    if world_size < 2:
        return
    device = resolve_device(config.run.device)
    if config.run.sync_bn and device.type != "cuda":
        raise ConfigError("--sync-bn needs CUDA devices: PyTorch's SyncBatchNorm does not run on the CPU "
                          "(leave it off; batch-norm statistics are then averaged after each step)")
    if device.type == "cuda" and torch.cuda.device_count() < world_size:
        raise ConfigError(f"{world_size} processes need {world_size} GPUs, {torch.cuda.device_count()} are visible "
                          "(one process per GPU; or train on the CPU with --device cpu)")


def _prepare_networks(recipe: Recipe, config: TrainConfig, device: torch.device,
                      group: ProcessGroup) -> torch.memory_format:
    """Sync batch norm, device and memory format, identical weights everywhere, compilation;
    returns the memory format for input batches."""
    if config.run.sync_bn and group.distributed:
        for net in recipe.components.values():  # converts in place below the top module
            torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
    memory_format = place_networks(recipe, config, device)
    group.broadcast_parameters(recipe.networks().values())
    if config.run.compile:
        for net in recipe.networks().values():
            net.compile()  # in place: state-dict keys stay those of the plain module
    return memory_format


def train(config: TrainConfig, *, overwrite: bool = False, resume: bool = False, registry: Registry | None = None,
          catalog: DatasetCatalog | None = None, console: Any = None) -> TrainResult:
    """Train ``config`` to completion and write the run directory; returns where the model is.

    ``resume=True`` continues the run in ``config.run.out`` from its newest checkpoint (networks,
    optimizers, schedulers, loss scale, position, RNG states), exactly as if it had never stopped;
    see :func:`imgtrans.training.resume.resume_config` for the config of an existing run.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) each process trains on its shard of every epoch with
    gradients averaged across processes; only rank 0 writes (training/distributed.py).
    """
    if registry is None or catalog is None:
        from ..plugins import get_host

        host = get_host()
        registry, catalog = registry or host.registry, catalog or host.catalog
    group = ProcessGroup.from_environment()
    device = group.device(resolve_device(config.run.device))
    check_run_settings(config)
    precision = resolve_precision(config.run.precision, device)
    if group.distributed:  # every process refuses alike (processes per machine: GPUs needed here)
        check_processes(config, int(os.environ.get("LOCAL_WORLD_SIZE", group.world_size)))
    keep_freed_memory()
    group.start(device)
    run = None
    try:
        run = _Run(config, registry, catalog, console, group, device, precision)
        return run.train(overwrite, resume)
    finally:
        if run is not None and run.lock is not None:
            run.lock.release()
        group.close()


class _Run:
    """One training run: set-up, the loop over epochs and steps, and what it writes.

    Every process of a distributed run executes all of it; only rank 0 (``self.main``) writes,
    and every collective call is made by all processes in the same order.
    """

    def __init__(self, config: TrainConfig, registry: Registry, catalog: DatasetCatalog, console: Any,
                 group: ProcessGroup, device: torch.device, precision: str):
        self.config, self.registry, self.catalog, self.console = config, registry, catalog, console
        self.group, self.device, self.precision = group, device, precision
        self.main = group.is_main
        self.lock: RunLock | None = None  # rank 0's lock on the run directory
        self.data_record: dict[str, Any] | None = None  # which data, recorded in every checkpoint
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed crop size: the autotuned kernels are reused

    def train(self, overwrite: bool, resume: bool) -> TrainResult:
        start_batch = self._setup(overwrite, resume)
        model_path = self.run_dir / "model.safetensors"
        try:  # Ctrl-C and a full disk: one line saying which checkpoint exists
            with self.progress, rd.stop_reasons(self.run_dir, lambda: self.step):
                while self.step < self.total_steps and self.epoch < self.total_epochs:
                    self.epoch += 1  # (skipped items make epochs shorter, hence both conditions)
                    batch_index = self._train_epoch(start_batch)
                    start_batch = 0
                    self._end_epoch(batch_index)
                self._finish()
                if self.main:
                    save_checkpoint(model_path, model_networks(self.recipe),
                                    model_metadata(self.config, self.recipe, epoch=self.epoch, step=self.step,
                                                   world_size=self.group.world_size))
                    write_html(self.run_dir)
        finally:
            if self.log is not None:
                self.log.close()
            if self.tensorboard is not None:
                self.tensorboard.close()
        self.group.barrier()  # every process returns once the model exists
        return TrainResult(self.run_dir, model_path, self.step, self.history, skipped=len(self.dataset.skipped))

    # -- set-up -----------------------------------------------------------------------------------

    def _setup(self, overwrite: bool, resume: bool) -> int:
        """Build everything; returns the batches of the first epoch already consumed (resume)."""
        config, registry, catalog, group, device = self.config, self.registry, self.catalog, self.group, self.device
        ckpt: Checkpoint | None = None
        if resume:  # before anything slow: a run that cannot be resumed says so at once
            found: list[Checkpoint] = []  # rank 0 reads the checkpoint once; the others read the file it names

            def tidy_and_find() -> str:
                self.lock = RunLock(config.run.out)
                found.append(_resume_run_dir(config, self.lock))
                return found[0].metadata["path"]

            path = group.from_main(tidy_and_find)
            ckpt = found[0] if found else load_checkpoint(path)
            ckpt.metadata["path"] = path
        seed_everything(config.run.seed)  # the same initial weights in every process
        recipe = self.recipe = build_recipe(config, registry)
        self.recipe_plugin = registry.get("recipe", config.recipe.name).plugin
        for slot in recipe.directions.values():
            stride = recipe.components[slot].stride
            if config.data.crop_size % stride:
                suggestion = max(stride, config.data.crop_size // stride * stride)
                raise ConfigError(f"crop size {config.data.crop_size} is not a multiple of {stride}, the input size "
                                  f"step of {slot} {config.components[slot].name!r}; use --crop-size "
                                  f"{suggestion} or a generator with a smaller step")
        if config.run.init and ckpt is None:  # fine-tuning: start slots from existing weights
            apply_init(recipe, config.run.init)
        say = (lambda msg: self.console.print(msg)) if self.console is not None and self.main else None
        dataset = self.dataset = SkipBadItems(
            build_dataset(config, registry, catalog, split=config.data.split, train=True, progress=say),
            strict=config.data.strict, warn=warn_stderr)
        self.preview = self.val_data = self.tensorboard = self.log = None
        if self.main:
            self.preview = {k: v.to(device) for k, v in _preview_batch(config, registry, catalog, dataset).items()}
            self.val_data = _validation_data(config, registry, catalog) if config.run.validate_every else None
        # only now, everything checked: a refused run leaves no run directory (or an unchanged one)
        config.run.out = group.from_main(lambda: self._open_run_dir(overwrite, ckpt))
        self.run_dir = Path(config.run.out)
        if self.main:
            self.tensorboard = TensorBoardLogger.create(self.run_dir) if config.run.tensorboard else None
            self.log = MetricsLog(self.run_dir / "metrics.jsonl")  # appends

        self.memory_format = _prepare_networks(recipe, config, device, group)
        self.engine = StepEngine(self.precision, device, group, recipe.networks().values())
        recipe.engine = self.engine
        optim = config.optim
        self.optimizers = recipe.configure_optimizers(optim.lr, (optim.beta1, optim.beta2))
        self.schedulers = {name: linear_decay(o, optim.epochs, optim.epochs_decay)
                           for name, o in self.optimizers.items()}
        # The order of each epoch and each item's augmentation are functions of (seed, epoch[, index]),
        # so a resumed run sees exactly the data the uninterrupted one would have (training/data_order.py);
        # each process of a distributed run takes its own shard of that order.
        self.sampler = EpochSampler(len(dataset), config.run.seed, group.rank, group.world_size)
        self.loader_generator = torch.Generator()
        self.loader = DataLoader(
            SeededItems(dataset), batch_size=config.data.batch_size, sampler=self.sampler,
            num_workers=config.data.num_workers, pin_memory=device.type == "cuda",
            # workers live across epochs unless the dataset redraws per epoch in the main process
            persistent_workers=config.data.num_workers > 0 and not dataset.dataset.draws_per_epoch,
            generator=self.loader_generator, drop_last=False, collate_fn=collate_skipping)

        self.total_epochs = optim.epochs + optim.epochs_decay
        self.steps_per_epoch = len(self.loader)
        self.total_steps = self.total_epochs * self.steps_per_epoch
        if optim.max_steps is not None:
            self.total_steps = min(self.total_steps, optim.max_steps)
        self.history: list[dict[str, Any]] = []
        self.step, self.epoch, self.last_logged, self.window_images = 0, 0, 0, 0
        self.sums: dict[str, torch.Tensor] = {}
        if group.distributed:  # dropout masks differ between processes, like their data
            seed_everything(process_seed(config.run.seed, group.rank))
        start_batch = self._restore(ckpt) if ckpt is not None else 0
        setup = {"device": str(device), "precision": self.precision, "processes": group.world_size}
        if self.main:  # what "auto" became, for the record
            self.log.write(setup)
            if say is not None:
                say(f"training on {device} in {self.precision}" + (f" with {group.world_size} processes"
                                                                   if group.distributed else ""))
        self.window_start = time.perf_counter()
        self.progress = TrainingProgress(self.total_steps, self.total_epochs, enabled=config.run.progress and self.main,
                                         console=self.console, completed=min(self.step, self.total_steps))
        return start_batch

    def _open_run_dir(self, overwrite: bool, ckpt: Checkpoint | None) -> str:
        """Rank 0: record which data this is, then create the run directory (fresh run) or check
        the data and continue the existing one (resume)."""
        config = self.config
        root = resolve_dataset(config.data.source, self.catalog)
        self.data_record = data_record(root, config.data.split, Path(config.run.out) if config.run.out else None)
        if ckpt is not None:
            _continue_run_dir(config, ckpt, self.data_record)
            return config.run.out
        run_dir, self.lock = prepare_run_dir(config, overwrite, root)
        return str(run_dir)

    # -- the loop ---------------------------------------------------------------------------------

    def _train_epoch(self, start_batch: int) -> int:
        """Train epoch ``self.epoch`` from its batch ``start_batch``; returns the batches consumed."""
        config, group, device, epoch = self.config, self.group, self.device, self.epoch
        self.progress.start_epoch(epoch)
        self.dataset.dataset.set_epoch(epoch)  # unpaired data draws new pairs each epoch
        # a resumed epoch leaves out the batches consumed before the checkpoint
        self.sampler.set_epoch(epoch, start=start_batch * config.data.batch_size)
        self.loader_generator.manual_seed(loader_seed(config.run.seed, epoch))
        batch_index = start_batch
        every = config.run.checkpoint_every_steps
        for batch in self.loader:
            batch_index += 1
            batch = self.dataset.receive(batch)  # records (and warns about) the items it left out
            if not group.all_have(batch is not None, device):  # processes step together
                continue
            batch = {k: v.to(device, non_blocking=True, memory_format=self.memory_format)
                     for k, v in batch.items() if torch.is_tensor(v)}
            with self.engine.autocast(), plugin_code(self.recipe_plugin, f"recipe {self.config.recipe.name!r} step"):
                losses = self.recipe.train_step(batch, self.optimizers)
            self.engine.end_step()
            for k, v in losses.items():  # summed on the device: no synchronisation per step
                self.sums[k] = self.sums.get(k, 0) + v.float()
            self.step += 1
            self.window_images += batch["A"].shape[0]
            if self.step % config.run.log_every == 0 or self.step == self.total_steps:
                self._log_window()
            self.progress.advance()
            if self.main and config.run.preview_every_steps and self.step % config.run.preview_every_steps == 0:
                _write_preview(self.recipe, self.preview, self.run_dir / "previews" / f"step_{self.step:08d}.png")
                write_html(self.run_dir)
            if self.step >= self.total_steps:
                break
            if every and self.step % every == 0 and not (self._checkpoint_at_end()
                                                         and batch_index == self.steps_per_epoch):
                self._write_checkpoint(epoch - 1, batch_index)
        if self.step == 0 and len(self.dataset.skipped) == len(self.dataset):
            raise DataError(f"none of the {len(self.dataset)} training items could be read (see the warnings above)")
        return batch_index

    def _validate(self) -> dict[str, Any]:
        """Scores of every direction the recipe trains (``val_l1``...; ``val_BtoA_l1``... for the way back)."""
        record: dict[str, Any] = {}
        norm_stats = recommended_norm_stats(self.config, self.group.world_size)
        for direction, gen in self.recipe.generators().items():
            view = self.val_data if direction == "AtoB" else _Swapped(self.val_data)
            scores = validate(gen, view, stride=gen.stride, norm_stats=norm_stats, device=self.device)
            prefix = "val_" if direction == "AtoB" else f"val_{direction}_"
            record.update({prefix + k[len("val_"):]: v for k, v in scores.items()})
        return record

    def _checkpoint_at_end(self) -> bool:
        return self.epoch % self.config.run.checkpoint_every == 0 or self.epoch == self.total_epochs

    def _end_epoch(self, batch_index: int) -> None:
        config, epoch = self.config, self.epoch
        last = self.step >= self.total_steps or epoch >= self.total_epochs
        # --max-steps may stop part-way through an epoch: then the epoch is not over (no schedule
        # step) and its checkpoint records the position inside it
        cut_short = batch_index < self.steps_per_epoch
        if last and self.sums:  # skipped items ended the run short of total_steps: log the rest
            self._log_window()
        if not cut_short:
            for scheduler in self.schedulers.values():
                scheduler.step()
        if self.main and (epoch % config.run.preview_every == 0 or last):
            _write_preview(self.recipe, self.preview, self.run_dir / "previews" / f"epoch_{epoch:04d}.png")
        if self.val_data is not None and (epoch % config.run.validate_every == 0 or last):
            # not part of `history`: _log_window's averages count steps between training records
            self._write_record({"step": self.step, "epoch": epoch, **self._validate()})
        if self.main:
            write_html(self.run_dir)
        if cut_short:
            self._write_checkpoint(epoch - 1, batch_index)
        elif self._checkpoint_at_end() or last:
            self._write_checkpoint(epoch, 0)

    def _finish(self) -> None:
        skipped = len(self.dataset.skipped)
        if skipped:
            warn_stderr(f"skipped {skipped} unreadable file(s)")
            if self.main:
                self.log.write({"skipped_files": skipped})
        if self.group.distributed:
            digests = self.group.gather(weights_digest(self.recipe.networks().values()))
            if self.main:
                self.log.write({"processes": self.group.world_size, "weights_digests": digests})
            if len(set(digests)) > 1:
                warn_stderr(f"the processes ended with different weights ({digests}); please report this")

    # -- logging ----------------------------------------------------------------------------------

    def _log_window(self) -> None:
        """One training record: losses averaged over the steps (and processes) since the last one."""
        group = self.group
        elapsed = time.perf_counter() - self.window_start
        n = self.step - self.last_logged
        totals = group.sum({**self.sums, "_images": float(self.window_images)}, self.device)
        images = totals.pop("_images")
        record = {"step": self.step, "epoch": self.epoch,
                  **{k: round(v / (n * group.world_size), 5) for k, v in totals.items()},
                  "img_per_s": round(images / max(elapsed, 1e-9), 3),
                  "lr": next(iter(self.optimizers.values())).param_groups[0]["lr"]}
        # every process sees the same sums, so all stop together
        check_finite(record, lambda: rd.diverged_note(self.run_dir, self.last_logged))
        if self.main:
            self._write_record(record)
            self.history.append(record)
            self.progress.show(record)
        self.sums, self.window_images, self.window_start = {}, 0, time.perf_counter()
        self.last_logged = self.step

    def _write_record(self, record: dict[str, Any]) -> None:
        self.log.write(record)
        if self.tensorboard is not None:
            self.tensorboard.log(record)

    def _write_checkpoint(self, epochs_done: int, batch: int) -> None:
        """A step checkpoint with everything needed to continue after this step (also last.safetensors).
        Every process takes part (RNG states and skipped items are gathered); rank 0 writes."""
        group = self.group
        rng_tensors, rng_meta = rng_state()
        per_process = group.gather((rng_tensors, rng_meta, dict(self.dataset.skipped)))
        window_sums = group.sum(self.sums, self.device)  # whole-run totals; each process restores a share
        if not group.is_main:
            return
        tensors: dict[str, dict[str, torch.Tensor]] = {"rng": rng_tensors}
        skipped: dict[int, str] = {}
        for rank, (tensors_r, _, skipped_r) in enumerate(per_process):
            skipped.update(skipped_r)
            if rank:
                tensors[f"rng_process{rank}"] = tensors_r
        optim_meta = {}
        for name, opt in self.optimizers.items():
            tensors[f"optim/{name}"], optim_meta[name] = optimizer_state(opt)
        state = {"version": STATE_VERSION, "step": self.step, "epoch": epochs_done, "batch": batch,
                 "optimizers": optim_meta,
                 "schedulers": {name: scheduler_state(s) for name, s in self.schedulers.items()},
                 "scaler": self.engine.state_dict(),
                 "rng": rng_meta,
                 "processes": group.world_size,
                 "rng_processes": [meta for _, meta, _ in per_process[1:]],
                 "window": {"sums": window_sums, "images": self.window_images * group.world_size,
                            "last_logged": self.last_logged},
                 "skipped": {str(k): v for k, v in skipped.items()},
                 RECORD_KEY: self.data_record}
        tensors["recipe"] = self.recipe.state_dict()  # image pools and the like (rank 0's)
        meta = model_metadata(self.config, self.recipe, epoch=max(self.epoch, 1), step=self.step,
                              world_size=group.world_size)
        path = save_checkpoint(step_path(self.run_dir, self.step), self.recipe.networks(),
                               {**meta, STATE_KEY: state}, state=tensors)
        publish(path, self.config.run.keep_checkpoints)

    def _restore(self, ckpt: Checkpoint) -> int:
        """Continue from ``ckpt``; returns the batches of the current epoch already consumed."""
        group, device = self.group, self.device
        state = ckpt.metadata[STATE_KEY]
        for name, net in self.recipe.networks().items():
            net.load_state_dict(ckpt.state_dict(name))
        for name, opt in self.optimizers.items():
            load_optimizer_state(opt, ckpt.state.get(f"optim/{name}", {}), state["optimizers"][name])
            load_scheduler_state(self.schedulers[name], state["schedulers"][name])
        self.engine.load_state_dict(state.get("scaler", {}))
        self.recipe.load_state_dict(ckpt.state.get("recipe", {}))
        self.step, self.epoch = state["step"], state["epoch"]
        window = state["window"]
        share = group.world_size
        self.sums = {k: torch.tensor(v / share, dtype=torch.float32, device=device) for k, v in window["sums"].items()}
        self.window_images, self.last_logged = window["images"] // share, window["last_logged"]
        self.dataset.skipped.update({int(k): v for k, v in state["skipped"].items()})
        if self.log is not None:
            self.log.write({"resumed_from_step": self.step, "checkpoint": Path(ckpt.metadata["path"]).name})
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


def _validation_data(config: TrainConfig, registry: Registry, catalog: DatasetCatalog) -> Dataset | None:
    """The validation split at native size (skipping unreadable files), or None with a warning.
    Unpaired data is scored only where its two sets are aligned by file name (ground truth)."""
    split = config.run.validate_split
    try:
        dataset = build_dataset(config, registry, catalog, split=split, train=False, native=True)
    except DataError:
        warn_stderr(f"the dataset has no {split!r} split; --validate-every is ignored "
                    "(choose another with --set run.validate_split=test)")
        return None
    if isinstance(dataset, UnpairedDataset) and not dataset.aligned():
        warn_stderr(f"the {split!r} split is unpaired (no ground truth for its images); --validate-every is ignored")
        return None
    return SkipBadItems(dataset, strict=config.data.strict, warn=warn_stderr)


class _Swapped:
    """A validation set seen the other way round: ``A`` and ``B`` exchanged (None items stay None)."""

    def __init__(self, dataset: Any):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        item = self.dataset[index]
        return None if item is None else {**item, "A": item["B"], "B": item["A"]}


def check_finite(record: dict[str, Any], checkpoints: Callable[[], str] | None = None) -> None:
    """Stop a diverged run; ``checkpoints`` says which checkpoint it leaves."""
    bad = [k for k, v in record.items() if isinstance(v, float) and not np.isfinite(v)]
    if bad:
        left = f"{checkpoints()} " if checkpoints is not None else ""
        raise FloatingPointError(f"loss became NaN or infinite ({', '.join(bad)}) at step {record['step']}; "
                                 f"{left}Try a lower --lr.")


@torch.no_grad()
def _write_preview(recipe: Recipe, batch: dict[str, torch.Tensor], path: Path) -> None:
    """The recipe's preview columns, computed with every network in eval mode."""
    modes = [(m, m.training) for net in recipe.networks().values() for m in net.modules()]
    for net in recipe.networks().values():
        net.eval()
    try:
        columns = recipe.previews(batch)
    finally:
        for module, training in modes:
            module.training = training
    save_preview(path, columns)
