"""How a training step runs: precision, the processes of a run, and where its networks train.

**The step engine**: what a recipe calls instead of ``loss.backward()`` and ``optimizer.step()``.
A recipe's ``train_step`` is the same code in every precision and for any number of processes
because the two calls that differ go through a :class:`StepEngine`:

* ``backward(loss)`` leaves autocast (PyTorch recommends running the backward pass outside it)
  and, for ``fp16-mixed``, scales the loss so that small fp16 gradients do not flush to zero;
* ``step(optimizer)`` averages the optimizer's gradients over the processes of a distributed
  run (one coalesced all-reduce per optimizer), then steps, through the ``GradScaler`` under
  ``fp16-mixed`` (which skips steps whose gradients overflowed);
* ``end_step()``, called by the trainer once per batch, lets the scaler adapt its scale and keeps
  batch-norm running statistics identical on every process.

The trainer runs the whole ``train_step`` under :meth:`StepEngine.autocast`.

**The processes** (:class:`ProcessGroup`): multi-process data parallel training on PyTorch's own
launcher (``torchrun``).  ``torchrun`` starts one process per device and tells each its place
through the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``).
Every process builds the same networks from the same seed, reads its own shard of each epoch
(:class:`imgtrans.training.data_order.EpochSampler`), and before every optimizer step the gradients
are averaged over all processes, so the weights stay identical everywhere; only rank 0 writes.

Why not ``DistributedDataParallel``: its reducer expects one forward per backward over a fixed
set of trainable parameters, while a GAN step runs the discriminator several times per backward
and freezes it for the generator update.  Averaging each optimizer's gradients in one coalesced
all-reduce just before it steps is what DDP computes, without its overlap of communication with
the backward pass (which matters little next to pix2pix's compute; docs/training.md).

**Placement**: where and how a run's networks train: device, memory format (channels-last),
synchronised batch norm, identical initial weights in every process, compilation; and the
settings that cannot work with a given number of processes.
"""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from ..core.config import PRECISIONS, TrainConfig
from ..core.directions import primary_direction
from ..core.interfaces import Recipe
from ..core.networks import Discriminator, Generator
from ..inference.engine import cpu_has_fast_bf16
from ..util.devices import resolve_device
from ..util.errors import ConfigError


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively (otherwise bf16 is emulated and slower)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)  # Ampere and newer
    if device.type == "cpu":
        return cpu_has_fast_bf16()
    return False


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` is the fastest choice that keeps pix2pix's quality (docs/training.md): bf16-mixed
    where the hardware has bf16 arithmetic, fp32 elsewhere.  fp16-mixed is never automatic: it
    needs loss scaling and its narrow range is riskier for GAN losses."""
    if name not in PRECISIONS:
        raise ConfigError(f"unknown precision {name!r}; choose one of {', '.join(PRECISIONS)}")
    if name == "auto":
        return "bf16-mixed" if native_bf16(device) else "fp32"
    if name == "fp16-mixed" and device.type not in ("cuda", "cpu"):
        raise ConfigError(f"fp16-mixed is not available on {device.type}")
    return name


class StepEngine:
    """Precision and gradient averaging for one training run (see the module docstring)."""

    def __init__(self, precision: str, device: torch.device, group: ProcessGroup | None = None,
                 networks: Iterable[torch.nn.Module] = ()):
        """``networks``: those whose buffers (batch-norm statistics) :meth:`end_step` keeps in sync."""
        self.precision, self.device = precision, device
        self.group = group if group is not None and group.distributed else None
        self.dtype = {"bf16-mixed": torch.bfloat16, "fp16-mixed": torch.float16}.get(precision)
        self.scaler = torch.amp.GradScaler(device.type) if precision == "fp16-mixed" else None
        self._networks = list(networks)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        with torch.autocast(self.device.type, enabled=False):
            (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """Average, step, then forget autocast's casts: autocast caches the bf16 copy of each
        trainable weight until the step's outermost autocast ends, and it does not notice that an
        optimizer changed the weight in place, so a network updated and then run again within one
        ``train_step`` would compute with its old weights."""
        if self.group is not None:
            self.group.average_gradients(_params(optimizer))
        if self.scaler is not None:
            self.scaler.step(optimizer)
        else:
            optimizer.step()
        if self.dtype is not None:
            torch.clear_autocast_cache()

    def end_step(self) -> None:
        if self.scaler is not None:
            self.scaler.update()
        if self.group is not None:
            self.group.average_buffers(self._networks)

    # -- resume ---------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """JSON-able: the loss scale and its growth counter (empty unless fp16-mixed)."""
        return dict(self.scaler.state_dict()) if self.scaler is not None else {}  # floats and ints

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(dict(state))


def _params(optimizer: torch.optim.Optimizer) -> Iterator[torch.Tensor]:
    for group in optimizer.param_groups:
        yield from group["params"]


# -- the processes of a run ------------------------------------------------------------------------

#: gradients are all-reduced in flat buckets of at most this many elements (bounded extra memory)
BUCKET_ELEMENTS = 16 * 1024 * 1024

T = TypeVar("T")


@dataclass
class ProcessGroup:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls) -> ProcessGroup:
        """What ``torchrun`` set, or a single process when it did not."""
        try:
            world = int(os.environ.get("WORLD_SIZE", "1"))
            rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
        except ValueError as exc:
            raise ConfigError(f"malformed torchrun environment: {exc}") from None
        return cls(rank, world, local)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    # -- set-up ---------------------------------------------------------------------------------

    def device(self, requested: torch.device) -> torch.device:
        """Each process of a multi-GPU run takes the GPU with its local rank."""
        if self.distributed and requested.type == "cuda":
            if torch.cuda.device_count() <= self.local_rank:
                raise ConfigError(f"process {self.rank} needs GPU {self.local_rank} but only "
                                  f"{torch.cuda.device_count()} are visible: use --nproc-per-node <= GPUs")
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return requested

    def start(self, device: torch.device) -> None:
        """Join the run's process group: NCCL between GPUs, gloo on the CPU."""
        if not self.distributed or dist.is_initialized():
            return
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=self.rank, world_size=self.world_size,
                                timeout=datetime.timedelta(minutes=30))

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()

    # -- collectives ----------------------------------------------------------------------------

    def broadcast_parameters(self, networks: Iterable[torch.nn.Module]) -> None:
        """Rank 0's weights and buffers everywhere (seeding already makes them equal; this makes sure)."""
        if not self.distributed:
            return
        for net in networks:
            for tensor in [*net.parameters(), *net.buffers()]:
                dist.broadcast(tensor.data, src=0)

    def average_gradients(self, params: Iterable[torch.Tensor]) -> None:
        self._average([p.grad for p in params if p.grad is not None])

    def average_buffers(self, networks: Iterable[torch.nn.Module]) -> None:
        """Batch-norm running statistics are averaged so every process keeps the same ones
        (integer buffers such as ``num_batches_tracked`` are equal anyway)."""
        self._average([b for net in networks for b in net.buffers() if b.is_floating_point()])

    def _average(self, tensors: list[torch.Tensor]) -> None:
        """Replace each tensor by its mean over the processes, one all-reduce per flat bucket."""
        for bucket in _buckets(tensors):
            flat = torch._utils._flatten_dense_tensors(bucket)
            dist.all_reduce(flat)
            flat.div_(self.world_size)
            for tensor, value in zip(bucket, torch._utils._unflatten_dense_tensors(flat, bucket)):
                tensor.copy_(value)

    def all_have(self, flag: bool, device: torch.device) -> bool:
        """True when ``flag`` holds on every process (e.g. every process has a readable batch)."""
        if not self.distributed:
            return flag
        value = torch.tensor([int(flag)], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
        return bool(value.item())

    def sum(self, values: dict[str, torch.Tensor | float], device: torch.device) -> dict[str, float]:
        """Sums over processes (for logging), as Python floats."""
        keys = sorted(values)
        if not keys:
            return {}
        stacked = torch.stack([torch.as_tensor(values[k], dtype=torch.float64, device=device) for k in keys])
        if self.distributed:
            dist.all_reduce(stacked)
        return dict(zip(keys, stacked.tolist()))

    def from_main(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on rank 0 only (it writes files) and give its result, or its error, to every
        process, so that a refusal on rank 0 (e.g. an occupied run directory) stops all of them."""
        if not self.distributed:
            return fn()
        box: list[Any] = [None]
        if self.is_main:
            try:
                box = [(True, fn())]
            except Exception as exc:
                box = [(False, exc)]
        dist.broadcast_object_list(box, src=0)
        ok, value = box[0]
        if not ok:
            raise value
        return value

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def gather(self, obj: object) -> list[object]:
        """Every process's ``obj``, in rank order (all processes get the list)."""
        if not self.distributed:
            return [obj]
        out: list[object] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


def weights_digest(networks: Iterable[torch.nn.Module]) -> str:
    """A short hash of all parameters and buffers: equal digests mean bit-identical weights."""
    h = hashlib.blake2b(digest_size=12)
    for net in networks:
        for name, tensor in net.state_dict().items():
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _buckets(tensors: list[torch.Tensor]) -> Iterable[list[torch.Tensor]]:
    """Consecutive groups of same-dtype tensors of at most BUCKET_ELEMENTS elements (one tensor may exceed it)."""
    bucket: list[torch.Tensor] = []
    size = 0
    for t in tensors:
        if bucket and (size + t.numel() > BUCKET_ELEMENTS or t.dtype != bucket[0].dtype):
            yield bucket
            bucket, size = [], 0
        bucket.append(t)
        size += t.numel()
    if bucket:
        yield bucket


# -- placement -------------------------------------------------------------------------------------

def wants_channels_last(net: torch.nn.Module, config: TrainConfig, device: torch.device) -> bool:
    """Whether ``net`` trains in channels-last (NHWC) memory format: as set by ``run.channels_last``,
    and with ``auto``: every network on CUDA (tensor cores read NHWC); on the CPU what the network
    declares (:attr:`Generator.channels_last_on_cpu`), else only networks without transposed
    convolutions, whose oneDNN NHWC kernels were slower there (measured on a paper-size bf16
    step: the PatchGAN in NHWC saves about 25 ms, the U-Net in NHWC costs about 80)."""
    if config.run.channels_last != "auto":
        return config.run.channels_last == "on"
    if device.type == "cuda":
        return True
    if isinstance(net, (Generator, Discriminator)) and net.channels_last_on_cpu is not None:
        return net.channels_last_on_cpu
    return not any(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules())


def place_networks(recipe: Recipe, config: TrainConfig, device: torch.device) -> torch.memory_format:
    """Move the recipe's networks to ``device`` in training mode and their memory format; returns
    the format for input batches (the generator's)."""
    modules = {**recipe.components, **recipe.owned}
    formats = {name: torch.channels_last if wants_channels_last(net, config, device) else torch.contiguous_format
               for name, net in modules.items()}
    for name, net in modules.items():
        net.to(device=device, memory_format=formats[name]).train()
    return formats[recipe.directions[primary_direction(recipe.directions)]]


def prepare_networks(recipe: Recipe, config: TrainConfig, device: torch.device,
                     group: ProcessGroup) -> torch.memory_format:
    """Sync batch norm, device and memory format, identical weights everywhere, compilation;
    returns the memory format for input batches."""
    if config.run.sync_bn and group.distributed:
        for net in [*recipe.components.values(), *recipe.owned.values()]:  # converts in place below the top module
            torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
    memory_format = place_networks(recipe, config, device)
    group.broadcast_parameters(recipe.networks().values())
    if config.run.compile:
        for net in recipe.networks().values():
            net.compile()  # in place: state-dict keys stay those of the plain module
    return memory_format


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
