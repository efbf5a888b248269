"""What a recipe calls instead of ``loss.backward()`` and ``optimizer.step()``.

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
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch

from ..core.config import PRECISIONS
from ..util.errors import ConfigError
from .distributed import ProcessGroup


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively (otherwise bf16 is emulated and slower)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)  # Ampere and newer
    if device.type == "cpu":
        from ..inference.engine import cpu_has_fast_bf16

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
        if self.group is not None:
            self.group.average_gradients(_params(optimizer))
        if self.scaler is not None:
            self.scaler.step(optimizer)
        else:
            optimizer.step()

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
