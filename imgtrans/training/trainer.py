"""The generic training loop: config -> recipe + components -> data -> steps -> run directory.

Everything a recipe should not have to care about is done for it by this package: seeding,
devices, data loading, the learning-rate schedule, logging, previews and checkpoints.  This module
is the entry point, the checks of settings that cannot make a run together, the loop over epochs
and steps, and ``--nproc`` (the same run in several processes); the set-up is in
:mod:`~imgtrans.training.setup`, what a checkpoint holds in :mod:`~imgtrans.training.checkpoints`.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..core.checkpoint import save_checkpoint
from ..core.config import TrainConfig
from ..core.dataset_catalog import DatasetCatalog
from ..core.model_file import model_metadata, model_networks, recommended_norm_stats
from ..core.plugin_host import get_host
from ..core.registry import Registry, plugin_code
from ..util.devices import resolve_device
from ..util.errors import ConfigError, DataError, RunError
from ..util.host_memory import keep_freed_memory
from ..util.terminal import warn_stderr
from . import rundir as rd
from .checkpoints import save_training_checkpoint
from .records import TrainingProgress, write_preview
from .report import write_html
from .resume import EXTENDABLE
from .rundir import RunLock
from .building import build_dataset, build_recipe  # noqa: F401 - also importable from here
from .setup import Run, set_up
from .step_engine import ProcessGroup, check_processes, resolve_precision, weights_digest
from .validation import validate_directions


# build_recipe, build_dataset, resolve_device and check_processes lived here and are still imported from here
__all__ = ["TrainResult", "train", "build_recipe", "build_dataset", "resolve_device", "check_processes"]


@dataclass
class TrainResult:
    run_dir: Path
    model_path: Path
    steps: int
    history: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0  # unreadable training items that were skipped (each warned about once)


def train(config: TrainConfig, *, overwrite: bool = False, resume: bool = False, registry: Registry | None = None,
          catalog: DatasetCatalog | None = None, console: Any = None, allow_data_change: bool = False) -> TrainResult:
    """Train ``config`` to completion and write the run directory; returns where the model is.

    ``resume=True`` continues the run in ``config.run.out`` from its newest checkpoint (networks,
    optimizers, schedulers, loss scale, position, RNG states), exactly as if it had never stopped;
    see :func:`imgtrans.training.resume.resume_config` for the config of an existing run; it refuses
    data whose files or contents differ from what the run trained on unless ``allow_data_change``.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) each process trains on its shard of every epoch with
    gradients averaged across processes; only rank 0 writes (training/step_engine.py).
    """
    if registry is None or catalog is None:
        host = get_host()
        registry, catalog = registry or host.registry, catalog or host.catalog
    group = ProcessGroup.from_environment()
    device = group.device(resolve_device(config.run.device))
    check_run_settings(config)
    check_step_memory(config, device)
    precision = resolve_precision(config.run.precision, device)
    if group.distributed:  # every process refuses alike (processes per machine: GPUs needed here)
        check_processes(config, int(os.environ.get("LOCAL_WORLD_SIZE", group.world_size)))
    keep_freed_memory()
    group.start(device)
    locks: list[RunLock] = []  # rank 0's lock on the run directory, held until the end
    try:
        run = set_up(config, registry, catalog, console, group, device, precision, overwrite=overwrite,
                     resume=resume, locks=locks, allow_data_change=allow_data_change)
        return _Loop(run).train()
    finally:
        for lock in locks:
            lock.release()
        group.close()


class _Loop:
    """The loop over the epochs and steps of a run that is set up, and what it writes on the way.

    Every process of a distributed run executes all of it; only rank 0 (``run.main``) writes,
    and every collective call is made by all processes in the same order.
    """

    def __init__(self, run: Run):
        self.run = run
        self.history: list[dict[str, Any]] = []  # the training records (rank 0)
        self.progress = TrainingProgress(run.total_steps, run.total_epochs,
                                         enabled=run.config.run.progress and run.main,
                                         console=run.console, completed=min(run.step, run.total_steps))

    def train(self) -> TrainResult:
        run = self.run
        start_batch = run.start_batch
        model_path = run.run_dir / "model.safetensors"
        try:  # Ctrl-C and a full disk: one line saying which checkpoint exists
            with self.progress, rd.stop_reasons(run.run_dir, lambda: run.step):
                while run.step < run.total_steps and run.epoch < run.total_epochs:
                    run.epoch += 1  # (skipped items make epochs shorter, hence both conditions)
                    batch_index = self._train_epoch(start_batch)
                    start_batch = 0
                    self._end_epoch(batch_index)
                self._finish()
                if run.main:
                    save_checkpoint(model_path, model_networks(run.recipe),
                                    model_metadata(run.config, run.recipe, epoch=run.epoch, step=run.step,
                                                   world_size=run.group.world_size))
                    write_html(run.run_dir)
        finally:
            run.log.close()
        run.group.barrier()  # every process returns once the model exists
        return TrainResult(run.run_dir, model_path, run.step, self.history, skipped=len(run.dataset.skipped))

    def _train_epoch(self, start_batch: int) -> int:
        """Train epoch ``run.epoch`` from its batch ``start_batch``; returns the batches consumed."""
        run = self.run
        config, group, device, epoch = run.config, run.group, run.device, run.epoch
        self.progress.start_epoch(epoch)
        # a resumed epoch leaves out the batches consumed before the checkpoint
        loader = run.loader.epoch(epoch, start_batch)
        batch_index = start_batch
        every = config.run.checkpoint_every_steps
        for batch in loader:
            batch_index += 1
            batch = run.dataset.receive(batch)  # records (and warns about) the items it left out
            if not group.all_have(batch is not None, device):  # processes step together
                continue
            batch = {k: v.to(device, non_blocking=True, memory_format=run.memory_format)
                     for k, v in batch.items() if torch.is_tensor(v)}
            with run.engine.autocast(), plugin_code(run.recipe_plugin, f"recipe {config.recipe.name!r} step"):
                losses = run.recipe.train_step(batch, run.optimizers)
            check_losses(losses, config.recipe.name, run.recipe_plugin)
            run.engine.end_step()
            run.window.add(losses, batch["A"].shape[0])
            run.step += 1
            if run.step % config.run.log_every == 0 or run.step == run.total_steps:
                self._log_window()
            self.progress.advance()
            if run.main and config.run.preview_every_steps and run.step % config.run.preview_every_steps == 0:
                write_preview(run.recipe, run.preview, run.run_dir / "previews" / f"step_{run.step:08d}.png")
                write_html(run.run_dir)
            if run.step >= run.total_steps:
                break
            if every and run.step % every == 0 and not (self._checkpoint_at_end()
                                                        and batch_index == run.steps_per_epoch):
                save_training_checkpoint(run, epoch - 1, batch_index)
        if run.step == 0 and len(run.dataset.skipped) == len(run.dataset):
            raise DataError(f"none of the {len(run.dataset)} training items could be read (see the warnings above)")
        return batch_index

    def _checkpoint_at_end(self) -> bool:
        run = self.run
        return run.epoch % run.config.run.checkpoint_every == 0 or run.epoch == run.total_epochs

    def _end_epoch(self, batch_index: int) -> None:
        run = self.run
        config, epoch = run.config, run.epoch
        last = run.step >= run.total_steps or epoch >= run.total_epochs
        # --max-steps may stop part-way through an epoch: then the epoch is not over (no schedule
        # step) and its checkpoint records the position inside it
        cut_short = batch_index < run.steps_per_epoch
        if last and run.window.sums:  # skipped items ended the run short of total_steps: log the rest
            self._log_window()
        if not cut_short:
            for scheduler in run.schedulers.values():
                scheduler.step()
        if run.main and (epoch % config.run.preview_every == 0 or last):
            write_preview(run.recipe, run.preview, run.run_dir / "previews" / f"epoch_{epoch:04d}.png")
        if run.val_data is not None and (epoch % config.run.validate_every == 0 or last):
            # not part of `history`: the window's averages count steps between training records
            scores = validate_directions(run.recipe, run.val_data, device=run.device, metrics=run.val_metrics,
                                         norm_stats=recommended_norm_stats(config, run.group.world_size))
            run.log.write({"step": run.step, "epoch": epoch, **scores})
            self.progress.validation(epoch, scores)
            if run.best is not None:  # rank 0 only, like validation: no collective calls
                run.best.update(scores, run)
        if run.main:
            write_html(run.run_dir)
        if cut_short:
            save_training_checkpoint(run, epoch - 1, batch_index)
        elif self._checkpoint_at_end() or last:
            save_training_checkpoint(run, epoch, 0)

    def _log_window(self) -> None:
        """One training record: losses averaged over the steps (and processes) since the last one."""
        run = self.run
        lr = {name: opt.param_groups[0]["lr"] for name, opt in run.optimizers.items()}
        record = run.window.record(run.step, run.epoch, lr, run.run_dir)
        if run.main:
            run.log.write(record)
            self.history.append(record)
            self.progress.show(record)
        run.window.restart(run.step)

    def _finish(self) -> None:
        run = self.run
        skipped = len(run.dataset.skipped)
        if skipped:
            warn_stderr(f"skipped {skipped} unreadable file(s)")
            run.log.note({"skipped_files": skipped})
        if run.group.distributed:
            digests = run.group.gather(weights_digest(run.recipe.networks().values()))
            run.log.note({"processes": run.group.world_size, "weights_digests": digests})
            if len(set(digests)) > 1:
                warn_stderr(f"the processes ended with different weights ({digests}); please report this")


# -- settings that cannot make a run together ------------------------------------------------------
# Settings that are valid one by one (config.py checks each) but cannot make a run together,
# checked before any data is read or folder created, so that such a run says so in one line and
# leaves nothing behind.


def check_losses(losses: Any, recipe: str, plugin: str) -> None:
    """A step's result must be named scalar tensors (logged and averaged on the device)."""
    if isinstance(losses, Mapping) and all(isinstance(k, str) and torch.is_tensor(v) and v.numel() == 1
                                           for k, v in losses.items()):
        return
    if not isinstance(losses, Mapping):
        got = f"a {type(losses).__name__}"
    else:
        key, value = next((k, v) for k, v in losses.items()
                          if not (isinstance(k, str) and torch.is_tensor(v) and v.numel() == 1))
        got = (f"{key!r}: a tensor of shape {tuple(value.shape)}" if torch.is_tensor(value)
               else f"{key!r}: a {type(value).__name__}")
    raise ConfigError(f"recipe {recipe!r} (plugin {plugin!r}): train_step must return a dict of name -> scalar "
                      f"tensor, got {got}; return loss.detach() (not loss.item(), a float)")


def check_run_settings(config: TrainConfig) -> None:
    run, optim = config.run, config.optim
    if run.checkpoint_every_steps < 0 or run.keep_checkpoints < 1 or run.checkpoint_every < 1:
        raise ConfigError("run.checkpoint_every must be >= 1, run.checkpoint_every_steps >= 0 (0: off) and "
                          "run.keep_checkpoints >= 1")
    if optim.epochs + optim.epochs_decay < 1:
        raise ConfigError(f"a run must have at least one step: --epochs {optim.epochs} and --epochs-decay "
                          f"{optim.epochs_decay} give none (optim.epochs + optim.epochs_decay must be >= 1)")
    if optim.max_steps is not None and optim.max_steps < 1:
        raise ConfigError(f"a run must have at least one step: --max-steps {optim.max_steps} (optim.max_steps) "
                          "must be >= 1, or unset")
    if run.keep_best is not None and not run.validate_every:
        raise ConfigError(f"--keep-best {run.keep_best} needs --validate-every N (run.validate_every): the best "
                          "checkpoint is chosen by validation scores")


#: float32 values a training step keeps per input pixel, at the least: the A and B batch, the
#: output and the networks' activations and gradients (measured: about 130 for pix2pix's U-Net-256,
#: so this bound refuses only settings that cannot run, never one that merely runs slowly)
MIN_VALUES_PER_PIXEL = 16


def available_memory(device: torch.device) -> int | None:
    """Bytes a step may still take on ``device`` (free GPU memory; the host's MemAvailable), or None."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_step_memory(config: TrainConfig, device: torch.device) -> None:
    """Refuse, before any data is read or network built, a batch and crop size whose step cannot
    fit in memory by a wide margin (a lower bound, :data:`MIN_VALUES_PER_PIXEL`): `--batch-size
    100000 --crop-size 4096` reached 12.5 GB before anything refused.  Names the largest setting
    that fits."""
    data = config.data
    available = available_memory(device)
    if available is None:
        return
    side = max(data.crop_size, data.load_size)
    need = data.batch_size * side * side * MIN_VALUES_PER_PIXEL * 4
    if need <= available:
        return
    per_item = side * side * MIN_VALUES_PER_PIXEL * 4
    fits_batch = available // per_item
    fits_side = int((available / (data.batch_size * MIN_VALUES_PER_PIXEL * 4)) ** 0.5)
    hint = (f"--batch-size {fits_batch} at this size" if fits_batch >= 1 else
            f"--crop-size and --load-size {fits_side} at --batch-size {data.batch_size}")
    raise ConfigError(f"a training step at --batch-size {data.batch_size}, --load-size {data.load_size} and "
                      f"--crop-size {data.crop_size} needs at least {need / 2**30:.1f} GiB, more than the "
                      f"{available / 2**30:.1f} GiB available on {device.type}; nothing above {hint} can fit "
                      "(a real step needs several times this bound)")


# -- --nproc: the same run in several processes ----------------------------------------------------
# ``imgtrans train --nproc N``: the same command in N processes on this machine, started through
# torchrun's API (its command-line wrapper would add a launcher traceback to every worker's error).
#
# Every worker re-reads the settings from the command line it is given: a fresh run passes its
# resolved config as a temporary ``config.toml``, a resumed run the run directory and the options
# that extend it.  For several machines, users run ``torchrun ... -m imgtrans train`` themselves.


def launch(nproc: int, args: Sequence[str]) -> None:
    """Run ``imgtrans train ARGS`` in ``nproc`` processes on this machine."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("--nproc starts its own processes; under torchrun leave it out "
                          "(torchrun's --nproc-per-node sets their number)")
    # CPU processes share the cores rather than each taking all of them (torchrun's own default is 1)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    try:
        run(parse_args(["--standalone", f"--nproc-per-node={nproc}", "-m", "imgtrans", "train", *args]))
    except ChildFailedError as exc:
        codes = sorted({f.exitcode for f in exc.failures.values()})
        raise RunError(f"distributed training stopped (exit status {', '.join(map(str, codes))}); "
                       "see the messages above") from None


def launch_run(nproc: int, config: TrainConfig, *, overwrite: bool = False, quiet: bool = False) -> None:
    """Train ``config`` in ``nproc`` processes. It is checked here first, so that a mistake is
    reported once rather than by every process."""
    check_processes(config, nproc)
    with tempfile.TemporaryDirectory(prefix="imgtrans-") as tmp:
        toml = Path(tmp) / "config.toml"
        toml.write_text(config.to_toml(), encoding="utf-8")
        launch(nproc, [config.recipe.name, "--config", str(toml), *(["--overwrite"] if overwrite else []),
                       *(["--quiet"] if quiet else [])])


def launch_resume(nproc: int, run_dir: str | Path, extend: Mapping[str, Any], *, quiet: bool = False) -> None:
    """Continue the run in ``run_dir`` in ``nproc`` processes, extended by the :data:`EXTENDABLE`
    options in ``extend`` (None: not given)."""
    args = [a for k in EXTENDABLE if extend.get(k) is not None for a in (f"--{k.replace('_', '-')}", str(extend[k]))]
    launch(nproc, ["--resume", str(run_dir), *args, *(["--quiet"] if quiet else [])])
