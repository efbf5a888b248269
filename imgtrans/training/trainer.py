"""The generic training loop: config -> recipe + components -> data -> steps -> run directory.

Everything a recipe should not have to care about lives here: seeding, devices, data loading,
the learning-rate schedule, logging, previews and checkpoints.
"""
from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..checkpoint import Checkpoint, save_checkpoint
from ..config import TrainConfig
from ..data.catalog import DatasetCatalog, resolve_dataset
from ..data.formats import detect_format
from ..data.robust import SkipBadItems, collate_skipping
from ..data.transforms import PairedTransform
from ..errors import ConfigError, DataError
from ..fileio import atomic_path
from ..interfaces import Recipe
from ..registry import Registry
from ..terminal import warn_stderr
from . import resume as rs
from .outputs import MetricsLog, save_preview
from .progress import TrainingProgress
from .report import TensorBoardLogger, write_html
from .schedule import linear_decay
from .validation import validate

PREVIEW_ROWS = 4


@dataclass
class TrainResult:
    run_dir: Path
    model_path: Path
    steps: int
    history: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0  # unreadable training items that were skipped (each warned about once)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda was requested but no CUDA device is available (use --device cpu or auto)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_recipe(config: TrainConfig, registry: Registry) -> Recipe:
    recipe_cls = registry.get("recipe", config.recipe.name).factory
    components = {
        slot: registry.create(recipe_cls.slots[slot].kind, spec.name, **spec.args)
        for slot, spec in config.components.items()
    }
    return recipe_cls(components, **config.recipe.args)


def build_dataset(config: TrainConfig, registry: Registry, catalog: DatasetCatalog, *, split: str,
                  train: bool, progress: Callable[[str], None] | None = None, native: bool = False) -> Dataset:
    """The dataset of ``split``; ``native`` skips resizing and cropping (validation at full size)."""
    data = config.data
    if not data.source:
        raise ConfigError("no training data: pass --data NAME|PATH")
    root = resolve_dataset(data.source, catalog, progress=progress)
    formats = {c.name: c.factory for c in registry.components("dataset_format")}
    name = detect_format(root, formats) if data.format == "auto" else data.format
    g = config.components["generator"].args
    transform = None if native else PairedTransform(data.load_size, data.crop_size, flip=data.flip and train,
                                                    train=train, seed=config.run.seed)
    return registry.create("dataset_format", name, root=root, split=split, transform=transform,
                           direction=data.direction, in_channels=g.get("in_channels", 3),
                           out_channels=g.get("out_channels", 3), max_items=data.max_items,
                           **({"cache": True} if data.cache else {}))


def generator_metadata(config: TrainConfig, recipe: Recipe, *, epoch: int, step: int) -> dict[str, Any]:
    """Everything ``translate`` needs to rebuild and run the generator, and where it came from."""
    gen = recipe.generator
    return {
        "recipe": config.recipe.name,
        "generator": config.components["generator"].as_dict(),
        "in_channels": gen.in_channels,
        "out_channels": gen.out_channels,
        "stride": getattr(gen, "stride", 1),
        "direction": config.data.direction,
        "value_range": "[-1, 1]",
        "norm_stats": recommended_norm_stats(config),
        "dataset": config.data.source,
        "config": config.to_dict(),
        "epoch": epoch,
        "step": step,
    }


def recommended_norm_stats(config: TrainConfig) -> str:
    """Batch norm trained at batch size 1 only ever normalised with per-image statistics, which is
    what 'instance' reproduces at test time; the running averages are a looser fit (docs/translate.md)."""
    return "instance" if config.data.batch_size == 1 else "running"


def prepare_run_dir(config: TrainConfig, overwrite: bool) -> Path:
    out = config.run.out or f"runs/{config.recipe.name}-{Path(config.data.source).name}-{datetime.now():%Y%m%d-%H%M%S}"
    run_dir = Path(out)
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise ConfigError(f"{run_dir} already holds a run; choose another --out or pass --overwrite")
        shutil.rmtree(run_dir)
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run_dir / "previews").mkdir(exist_ok=True)
    config.run.out = str(run_dir)
    (run_dir / "config.toml").write_text(config.to_toml(), encoding="utf-8")
    return run_dir


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


def _resume_run_dir(config: TrainConfig) -> tuple[Path, Checkpoint]:
    """The run directory to continue (``config.run.out``) and its newest readable checkpoint."""
    run_dir = Path(config.run.out)
    if not (run_dir / "config.toml").is_file():
        raise ConfigError(f"cannot resume {run_dir}: it holds no config.toml")
    ckpt = rs.latest_checkpoint(run_dir, warn_stderr)
    rs.remove_partial_writes(run_dir)
    config.run.out = str(run_dir)
    with atomic_path(run_dir / "config.toml") as tmp:  # an extended run records its new length
        tmp.write_text(config.to_toml(), encoding="utf-8")
    (run_dir / "previews").mkdir(exist_ok=True)
    return run_dir, ckpt


def train(config: TrainConfig, *, overwrite: bool = False, resume: bool = False, registry: Registry | None = None,
          catalog: DatasetCatalog | None = None, console: Any = None) -> TrainResult:
    """Train ``config`` to completion and write the run directory; returns where the model is.

    ``resume=True`` continues the run in ``config.run.out`` from its newest checkpoint (networks,
    optimizers, schedulers, position, RNG states), exactly as if it had never stopped; see
    :func:`imgtrans.training.resume.resume_config` for the config of an existing run.
    """
    if registry is None or catalog is None:
        from ..plugins import get_host

        host = get_host()
        registry, catalog = registry or host.registry, catalog or host.catalog
    device = resolve_device(config.run.device)
    if config.run.checkpoint_every_steps < 0 or config.run.keep_checkpoints < 1 or config.run.checkpoint_every < 1:
        raise ConfigError("run.checkpoint_every must be >= 1, run.checkpoint_every_steps >= 0 (0: off) and "
                          "run.keep_checkpoints >= 1")
    ckpt: Checkpoint | None = None
    if resume:  # before anything slow: a run that cannot be resumed says so at once
        run_dir, ckpt = _resume_run_dir(config)
    seed_everything(config.run.seed)
    recipe = build_recipe(config, registry)
    stride = getattr(recipe.generator, "stride", 1)
    if config.data.crop_size % stride:
        suggestion = max(stride, config.data.crop_size // stride * stride)
        raise ConfigError(f"crop size {config.data.crop_size} is not a multiple of {stride}, the input size step of "
                          f"generator {config.components['generator'].name!r}; use --crop-size {suggestion} "
                          "or a smaller generator (e.g. --generator unet_128)")
    say = (lambda msg: console.print(msg)) if console is not None else None
    dataset = SkipBadItems(build_dataset(config, registry, catalog, split=config.data.split, train=True, progress=say),
                           strict=config.data.strict, warn=warn_stderr)
    if not resume:
        run_dir = prepare_run_dir(config, overwrite)
    preview = {k: v.to(device) for k, v in _preview_batch(config, registry, catalog, dataset).items()}
    val_data = _validation_data(config, registry, catalog) if config.run.validate_every else None
    tensorboard = TensorBoardLogger.create(run_dir) if config.run.tensorboard else None

    for net in recipe.components.values():
        net.to(device).train()
    optim = config.optim
    optimizers = recipe.configure_optimizers(optim.lr, (optim.beta1, optim.beta2))
    schedulers = {name: linear_decay(o, optim.epochs, optim.epochs_decay) for name, o in optimizers.items()}
    # The order of each epoch and each item's augmentation are functions of (seed, epoch[, index]),
    # so a resumed run sees exactly the data the uninterrupted one would have (training/resume.py).
    sampler = rs.EpochSampler(len(dataset), config.run.seed)
    loader_generator = torch.Generator()
    loader = DataLoader(rs.SeededItems(dataset), batch_size=config.data.batch_size, sampler=sampler,
                        num_workers=config.data.num_workers, pin_memory=device.type == "cuda",
                        # workers live across epochs unless the dataset redraws per epoch in the main process
                        persistent_workers=config.data.num_workers > 0 and not hasattr(dataset.dataset, "set_epoch"),
                        generator=loader_generator, drop_last=False,
                        collate_fn=collate_skipping)

    total_epochs = optim.epochs + optim.epochs_decay
    steps_per_epoch = len(loader)
    total_steps = total_epochs * steps_per_epoch
    if optim.max_steps is not None:
        total_steps = min(total_steps, optim.max_steps)
    if ckpt is not None:  # what the stopped run logged after its checkpoint is about to be redone
        rs.trim_metrics(run_dir / "metrics.jsonl", ckpt.metadata[rs.STATE_KEY]["step"])
    log = MetricsLog(run_dir / "metrics.jsonl")  # appends
    history: list[dict[str, Any]] = []
    step, epoch, start_batch, last_logged = 0, 0, 0, 0
    sums: dict[str, torch.Tensor] = {}
    window_images = 0
    if ckpt is not None:
        state = ckpt.metadata[rs.STATE_KEY]
        for name, net in recipe.networks().items():
            net.load_state_dict(ckpt.state_dict(name))
        for name, opt in optimizers.items():
            rs.load_optimizer_state(opt, ckpt.state.get(f"optim/{name}", {}), state["optimizers"][name])
            rs.load_scheduler_state(schedulers[name], state["schedulers"][name])
        step, epoch, start_batch = state["step"], state["epoch"], state["batch"]
        window = state["window"]
        sums = {k: torch.tensor(v, dtype=torch.float32, device=device) for k, v in window["sums"].items()}
        window_images, last_logged = window["images"], window["last_logged"]
        dataset.skipped.update({int(k): v for k, v in state["skipped"].items()})
        log.write({"resumed_from_step": step, "checkpoint": Path(ckpt.metadata["path"]).name})
        rs.set_rng_state(ckpt.state.get("rng", {}), state["rng"])  # last: nothing may draw after it
    window_start = time.perf_counter()
    progress = TrainingProgress(total_steps, total_epochs, enabled=config.run.progress, console=console,
                                completed=min(step, total_steps))

    def write_checkpoint(epochs_done: int, batch: int) -> None:
        """A step checkpoint with everything needed to continue after ``step`` (also last.safetensors)."""
        rng_tensors, rng_meta = rs.rng_state()
        tensors: dict[str, dict[str, torch.Tensor]] = {"rng": rng_tensors}
        optim_meta = {}
        for name, opt in optimizers.items():
            tensors[f"optim/{name}"], optim_meta[name] = rs.optimizer_state(opt)
        state = {"version": rs.STATE_VERSION, "step": step, "epoch": epochs_done, "batch": batch,
                 "optimizers": optim_meta,
                 "schedulers": {name: rs.scheduler_state(s) for name, s in schedulers.items()},
                 "rng": rng_meta,
                 "window": {"sums": {k: float(v) for k, v in sums.items()}, "images": window_images,
                            "last_logged": last_logged},
                 "skipped": {str(k): v for k, v in dataset.skipped.items()}}
        meta = generator_metadata(config, recipe, epoch=max(epoch, 1), step=step)
        path = save_checkpoint(rs.step_path(run_dir, step), recipe.networks(), {**meta, rs.STATE_KEY: state},
                               state=tensors)
        rs.publish(path, config.run.keep_checkpoints)

    def log_window() -> None:
        nonlocal sums, window_images, window_start, last_logged
        elapsed = time.perf_counter() - window_start
        n = step - last_logged
        record = {"step": step, "epoch": epoch,
                  **{k: round(float(v) / n, 5) for k, v in sums.items()},
                  "img_per_s": round(window_images / max(elapsed, 1e-9), 3),
                  "lr": optimizers[next(iter(optimizers))].param_groups[0]["lr"]}
        check_finite(record)
        log.write(record)
        if tensorboard is not None:
            tensorboard.log(record)
        history.append(record)
        progress.show(record)
        sums, window_images, window_start, last_logged = {}, 0, time.perf_counter(), step

    try:
        with progress:
            while step < total_steps and epoch < total_epochs:  # skipped items make epochs shorter
                epoch += 1
                progress.start_epoch(epoch)
                if hasattr(dataset.dataset, "set_epoch"):  # unpaired data draws new pairs each epoch
                    dataset.dataset.set_epoch(epoch)
                # a resumed epoch leaves out the batches consumed before the checkpoint
                sampler.set_epoch(epoch, start=start_batch * config.data.batch_size)
                loader_generator.manual_seed(rs.loader_seed(config.run.seed, epoch))
                batch_index, start_batch = start_batch, 0
                checkpoint_at_end = epoch % config.run.checkpoint_every == 0 or epoch == total_epochs
                for batch in loader:
                    batch_index += 1
                    batch = dataset.receive(batch)  # records (and warns about) the items it left out
                    if batch is None:
                        continue
                    batch = {k: v.to(device, non_blocking=True) for k, v in batch.items() if torch.is_tensor(v)}
                    losses = recipe.train_step(batch, optimizers)
                    for k, v in losses.items():
                        sums[k] = sums.get(k, 0) + v
                    step += 1
                    window_images += batch["A"].shape[0]
                    if step % config.run.log_every == 0 or step == total_steps:
                        log_window()
                    progress.advance()
                    if step >= total_steps:
                        break
                    every = config.run.checkpoint_every_steps
                    if every and step % every == 0 and not (checkpoint_at_end and batch_index == steps_per_epoch):
                        write_checkpoint(epoch - 1, batch_index)
                if step == 0 and len(dataset.skipped) == len(dataset):
                    raise DataError(f"none of the {len(dataset)} training items could be read "
                                    "(see the warnings above)")
                last = step >= total_steps or epoch >= total_epochs
                if last and sums:  # skipped items ended the run short of total_steps: log the rest
                    log_window()
                for s in schedulers.values():
                    s.step()
                if epoch % config.run.preview_every == 0 or last:
                    _write_preview(recipe, preview, run_dir / "previews" / f"epoch_{epoch:04d}.png")
                if val_data is not None and (epoch % config.run.validate_every == 0 or last):
                    # not part of `history`: log_window's averages count steps between training records
                    scores = validate(recipe.generator, val_data, stride=stride,
                                      norm_stats=recommended_norm_stats(config), device=device)
                    record = {"step": step, "epoch": epoch, **scores}
                    log.write(record)
                    if tensorboard is not None:
                        tensorboard.log(record)
                write_html(run_dir)
                if checkpoint_at_end or last:
                    write_checkpoint(epoch, 0)
        if dataset.skipped:
            warn_stderr(f"skipped {len(dataset.skipped)} unreadable file(s)")
            log.write({"skipped_files": len(dataset.skipped)})
    finally:
        log.close()
        if tensorboard is not None:
            tensorboard.close()
    model_path = save_checkpoint(run_dir / "model.safetensors", {"generator": recipe.generator},
                                 generator_metadata(config, recipe, epoch=epoch, step=step))
    write_html(run_dir)
    return TrainResult(run_dir, model_path, step, history, skipped=len(dataset.skipped))


def _validation_data(config: TrainConfig, registry: Registry, catalog: DatasetCatalog) -> Dataset | None:
    """The val split at native size (skipping unreadable files), or None with a warning."""
    try:
        return SkipBadItems(build_dataset(config, registry, catalog, split="val", train=False, native=True),
                            strict=config.data.strict, warn=warn_stderr)
    except DataError:
        warn_stderr("the dataset has no 'val' split; --validate-every is ignored")
        return None


def check_finite(record: dict[str, Any]) -> None:
    bad = [k for k, v in record.items() if isinstance(v, float) and not np.isfinite(v)]
    if bad:
        raise FloatingPointError(f"loss became NaN or infinite ({', '.join(bad)}) at step {record['step']}; "
                                 "the last checkpoint in checkpoints/ is intact. Try a lower --lr.")


@torch.no_grad()
def _write_preview(recipe: Recipe, batch: dict[str, torch.Tensor], path: Path) -> None:
    gen = recipe.generator
    gen.eval()
    try:
        out = recipe.translate(batch)
    finally:
        gen.train()
    save_preview(path, batch["A"], out, batch["B"])
