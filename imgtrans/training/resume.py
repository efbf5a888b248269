"""Resumable training: the whole training state in safetensors + JSON (nothing is ever pickled).

A training checkpoint (``RUN/checkpoints/step_00001234.safetensors``) is an ordinary imgtrans
checkpoint (each network under its prefix, the generator's description in the metadata) plus:

* tensors ``optim/<name>.<param index>.<key>``: each optimizer's per-parameter state (Adam's
  moments and step counts);
* tensors ``rng.torch`` (the CPU generator), ``rng.cuda<i>`` and ``rng.numpy`` (the MT19937 key);
* the metadata field ``training_state`` (JSON): the position (epochs done, batches of the next
  epoch already consumed, step), each optimizer's ``param_groups`` and non-tensor state, each
  scheduler's state, the rest of the numpy and Python RNG states, the metrics window in progress
  and the items skipped so far.

The data order needs no saved state: :class:`EpochSampler` derives each epoch's permutation from
``(seed, epoch)`` and :class:`SeededItems` re-seeds the augmentation pipeline from
``(seed, epoch, index)`` before each item, in fresh and resumed runs alike (and whatever the
number of loader workers), so a resumed epoch skips the consumed batches and goes on identically.
"""
from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..checkpoint import Checkpoint, load_checkpoint
from ..errors import CheckpointError, ConfigError
from ..fileio import atomic_path

STATE_KEY = "training_state"
STATE_VERSION = 1
LAST = "last.safetensors"
_STEP_FILE = re.compile(r"^step_(\d+)\.safetensors$")

#: options that ``--resume`` accepts, and only to extend the run (config section, key)
EXTENDABLE = {"epochs": ("optim", "epochs"), "epochs_decay": ("optim", "epochs_decay"),
              "max_steps": ("optim", "max_steps")}


# -- data order ---------------------------------------------------------------------------------

def _mix(*parts: int) -> int:
    """A stable 63-bit seed from integers (independent of PYTHONHASHSEED and of the platform)."""
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class EpochSampler(Sampler):
    """Each epoch's order is a pure function of ``(seed, epoch)``; it can start part-way through.

    Yields ``(index, item_seed)`` pairs for :class:`SeededItems`.  In a run of ``world_size``
    processes, process ``rank`` takes every ``world_size``-th item of the permutation from position
    ``rank`` (the permutation is first padded with its own beginning to a multiple of
    ``world_size``, so every process takes the same number of steps).  Step ``k`` of all processes
    together therefore covers exactly the items of step ``k`` of one process with the combined batch.
    """

    def __init__(self, size: int, seed: int, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside a world of {world_size} processes")
        self.size, self.seed, self.rank, self.world_size = size, seed, rank, world_size
        self.epoch, self.start = 1, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Use ``epoch``'s permutation, leaving out the first ``start`` items of this process's share."""
        self.epoch, self.start = epoch, start

    def permutation(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed((self.seed * 1000003 + epoch) % 2**63)
        return torch.randperm(self.size, generator=g).tolist()

    def shard(self, epoch: int) -> list[int]:
        order = self.permutation(epoch)
        if self.world_size > 1 and order:
            padded = order * (-(-len(self) * self.world_size // len(order)))
            order = padded[:len(self) * self.world_size][self.rank::self.world_size]
        return order

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for index in self.shard(self.epoch)[self.start:]:
            yield index, _mix(self.seed, self.epoch, index)

    def __len__(self) -> int:
        return -(-self.size // self.world_size)


class SeededItems(Dataset):
    """Re-seeds the dataset's augmentation pipeline (``dataset.transform.pipeline``) before each item.

    Takes ``(index, item_seed)`` keys from :class:`EpochSampler`; works the same in loader workers.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        inner = getattr(dataset, "dataset", dataset)
        self.pipeline = getattr(getattr(inner, "transform", None), "pipeline", None)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, seed = key
        if self.pipeline is not None and hasattr(self.pipeline, "set_random_seed"):
            self.pipeline.set_random_seed(seed % 2**32)
        return self.dataset[index]


def process_seed(seed: int, rank: int) -> int:
    """The seed of process ``rank``'s own random stream (dropout) in a distributed run."""
    return _mix(seed, rank, -2) % 2**32


def loader_seed(seed: int, epoch: int) -> int:
    """The DataLoader generator's seed for ``epoch`` (it only draws the workers' base seed)."""
    return _mix(seed, epoch, -1)


# -- optimizers, schedulers, RNG ------------------------------------------------------------------

def optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors (``"<param index>.<key>"``) and the JSON rest of ``optimizer.state_dict()``."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    state: dict[str, dict[str, Any]] = {}
    for pid, values in sd["state"].items():
        state[str(pid)] = {}
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{key}"] = value
            else:
                state[str(pid)][key] = value
    return tensors, {"param_groups": sd["param_groups"], "state": state}


def load_optimizer_state(optimizer: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor],
                         meta: Mapping[str, Any]) -> None:
    current = optimizer.state_dict()["param_groups"]
    if len(current) != len(meta["param_groups"]):
        raise CheckpointError("the checkpoint's optimizer has a different number of parameter groups")
    # JSON turned tuples (Adam's betas) into lists: give them back their type
    groups = [{k: tuple(v) if isinstance(now.get(k), tuple) else v for k, v in saved.items()}
              for saved, now in zip(meta["param_groups"], current)]
    state: dict[int, dict[str, Any]] = {int(pid): dict(values) for pid, values in meta["state"].items()}
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for key, value in tensors.items():
        pid, _, name = key.partition(".")
        if int(pid) >= len(params):
            raise CheckpointError("the checkpoint's optimizer state is for more parameters than these networks have")
        param = params[int(pid)]
        if value.shape == param.shape:
            # moments in the parameter's own layout (channels-last included) and device, as the
            # optimizer made them: fused kernels walk both in memory order
            value = torch.empty_like(param, dtype=value.dtype).copy_(value)
        state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def scheduler_state(scheduler: Any) -> dict[str, Any]:
    return {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}


def load_scheduler_state(scheduler: Any, state: Mapping[str, Any]) -> None:
    """Restore the position; the learning rate is recomputed from the (possibly extended) schedule."""
    state = dict(state)
    if hasattr(scheduler, "lr_lambdas"):
        state["lr_lambdas"] = [None] * len(scheduler.lr_lambdas)
    scheduler.load_state_dict(state)
    lambdas = getattr(scheduler, "lr_lambdas", None)
    if lambdas is not None:
        for group, base, factor in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, lambdas):
            group["lr"] = base * factor(scheduler.last_epoch)
        scheduler._last_lr = [g["lr"] for g in scheduler.optimizer.param_groups]


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """torch (CPU and CUDA), numpy and Python global RNG states: tensors and JSON."""
    tensors = {"torch": torch.get_rng_state()}
    name, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, internal, gauss = random.getstate()
    meta: dict[str, Any] = {"numpy": {"name": name, "pos": int(pos), "has_gauss": int(has_gauss),
                                      "cached_gaussian": float(cached)},
                            "python": [version, list(internal), gauss], "cuda": 0}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states = torch.cuda.get_rng_state_all()
        tensors.update({f"cuda{i}": s for i, s in enumerate(states)})
        meta["cuda"] = len(states)
    return tensors, meta


def set_rng_state(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"].to(torch.uint8))
    n = meta["numpy"]
    np.random.set_state((n["name"], tensors["numpy"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    count = min(meta.get("cuda", 0), torch.cuda.device_count() if torch.cuda.is_available() else 0)
    for i in range(count):
        torch.cuda.set_rng_state(tensors[f"cuda{i}"].to(torch.uint8), i)


# -- checkpoint files -----------------------------------------------------------------------------

def step_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:08d}.safetensors"


def step_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of the step checkpoints, oldest first."""
    folder = Path(run_dir) / "checkpoints"
    found = []
    if folder.is_dir():
        for path in folder.iterdir():
            m = _STEP_FILE.match(path.name)
            if m:
                found.append((int(m.group(1)), path))
    return sorted(found)


def publish(path: Path, keep: int) -> None:
    """Make ``path`` (a new step checkpoint) ``last.safetensors`` too, then keep only the newest ``keep``."""
    last = path.parent / LAST
    with atomic_path(last) as tmp:
        tmp.unlink()
        try:
            os.link(path, tmp)  # same bytes, no second write
        except OSError:
            shutil.copyfile(path, tmp)
    for _, old in step_checkpoints(path.parent.parent)[:-keep]:
        old.unlink(missing_ok=True)


def _last_step(last: Path) -> int:
    """The step last.safetensors was taken at (from its metadata; -1 when unreadable)."""
    from ..checkpoint import read_metadata

    try:
        step = read_metadata(last)[STATE_KEY]["step"]
    except (CheckpointError, KeyError, TypeError):
        return -1
    return step if isinstance(step, int) else -1


#: the fields of ``training_state`` that a resume reads, and their JSON types
_STATE_FIELDS = {"step": int, "epoch": int, "batch": int, "optimizers": dict, "schedulers": dict, "rng": dict,
                 "window": dict, "skipped": dict}


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


def latest_checkpoint(run_dir: Path, warn: Callable[[str], None]) -> Checkpoint:
    """The newest readable training checkpoint of ``run_dir`` (last.safetensors included: where
    hard links are not possible it is a copy, and may outlive a damaged step file); unreadable
    newer ones are warned about and removed (an interrupted run never leaves one: writes are
    atomic; a full disk or a damaged file might)."""
    run_dir = Path(run_dir)
    candidates = step_checkpoints(run_dir)
    last = run_dir / "checkpoints" / LAST
    if last.is_file() and not any(last.samefile(p) for _, p in candidates):
        candidates.append((_last_step(last), last))
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


def trim_metrics(path: Path, step: int) -> None:
    """Drop the records a killed run logged after the checkpoint it resumes from (they are redone)."""
    import json

    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by the kill
            continue
        if not isinstance(record.get("step"), int) or record["step"] <= step:
            kept.append(line)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


# -- configuration --------------------------------------------------------------------------------

def resume_config(run_dir: str | Path, registry: Any, extend: Mapping[str, Any] | None = None):
    """The resolved config of ``run_dir`` (its ``config.toml``), with ``extend`` applied: only
    ``epochs``, ``epochs_decay`` and ``max_steps``, and only raised."""
    from ..config import load_toml, resolve

    run_dir = Path(run_dir)
    toml = run_dir / "config.toml"
    if not toml.is_file():
        what = "does not exist" if not run_dir.exists() else "holds no config.toml"
        raise ConfigError(f"cannot resume {run_dir}: it {what} (pass the run directory of an earlier `imgtrans train`)")
    tree = load_toml(toml)
    recipe = tree.get("recipe", {}).get("name") if isinstance(tree.get("recipe"), dict) else None
    if not recipe:
        raise ConfigError(f"{toml} names no recipe ([recipe] name = ...)")
    saved = resolve(recipe, registry, [tree])
    layer: dict[str, dict[str, Any]] = {}
    for option, value in (extend or {}).items():
        if value is None:
            continue
        if option not in EXTENDABLE:
            raise ConfigError(f"--resume continues a run with its own settings; {option} cannot be changed "
                              "(only --epochs, --epochs-decay and --max-steps, to extend it)")
        section, key = EXTENDABLE[option]
        old = getattr(getattr(saved, section), key)
        if old is None or value < old:
            was = "no limit" if old is None else old
            raise ConfigError(f"--resume can only extend a run: --{option.replace('_', '-')} {value} is below "
                              f"the run's {was}")
        layer.setdefault(section, {})[key] = value
    config = resolve(recipe, registry, [tree, layer])
    config.run.out = str(run_dir)
    return config
