"""Multi-process data parallel training on PyTorch's own launcher (``torchrun``).

``torchrun`` starts one process per device and tells each its place through the environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``).  Every process builds
the same networks from the same seed, reads its own shard of each epoch
(:class:`imgtrans.training.data_order.EpochSampler`), and before every optimizer step the gradients
are averaged over all processes, so the weights stay identical everywhere; only rank 0 writes.

Why not ``DistributedDataParallel``: its reducer expects one forward per backward over a fixed
set of trainable parameters, while a GAN step runs the discriminator several times per backward
and freezes it for the generator update.  Averaging each optimizer's gradients in one coalesced
all-reduce just before it steps is what DDP computes, without its overlap of communication with
the backward pass (which matters little next to pix2pix's compute; docs/training.md).
"""
from __future__ import annotations

import datetime
import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from ..util.errors import ConfigError

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
