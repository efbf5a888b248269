"""What a generator, discriminator, loss, dataset and recipe are.

These are small base classes rather than Protocols so that plugins get sensible defaults and
the core can rely on a few attributes (channels, stride) when it pads, checkpoints or tests.
"""
from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import Dataset


class Generator(nn.Module):
    """Maps an image batch ``(N, in_channels, H, W)`` in [-1, 1] to ``(N, out_channels, H, W)``.

    ``stride`` is the multiple that ``H`` and ``W`` must be for the network to accept them
    (256 for U-Net-256); inference pads to it and crops back, so users can feed any size.
    """

    in_channels: int
    out_channels: int
    stride: int = 1


class Discriminator(nn.Module):
    """Scores an image batch with logits (no sigmoid: the adversarial loss owns that).

    A conditional discriminator receives the condition and the image concatenated on channels;
    ``in_channels`` is the total it expects.
    """

    in_channels: int


class Loss(nn.Module):
    """A loss term.  ``role`` tells a recipe how to call it.

    * ``"adversarial"``: ``loss(logits, target_is_real: bool) -> scalar``
    * ``"pixel"``: ``loss(prediction, target) -> scalar``
    """

    role: ClassVar[str] = "pixel"


class PairedDataset(Dataset, abc.ABC):
    """Aligned pairs.  Items are dicts ``{"A": tensor, "B": tensor, "path": str}`` in [-1, 1],
    already in the training direction (``A`` is always the network input)."""

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def __getitem__(self, index: int) -> dict[str, Any]: ...


class UnpairedDataset(Dataset, abc.ABC):
    """Two unaligned image sets.  Items are ``{"A", "B", "path_A", "path_B"}``; ``B`` is drawn
    independently of ``A`` (randomly, or serially with ``serial=True``), so the length is the
    larger of the two sets."""

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def __getitem__(self, index: int) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Slot:
    """A component a recipe needs: its kind and the default name (arguments come from the config)."""

    kind: str
    default: str
    args: Mapping[str, Any] | None = None


class Recipe(abc.ABC):
    """A training method: which components it needs, its defaults, and one optimisation step.

    Everything generic (devices, data loading, schedules, logging, checkpoints) belongs to the
    trainer, so a recipe stays a small file.  The trainer calls, in order: ``__init__`` with the
    built components and the recipe's hyper-parameters, ``configure_optimizers``, then
    ``train_step`` once per batch (under autocast when the run trains in mixed precision).

    Inside ``train_step``, call ``self.backward(loss)`` and ``self.step(optimizer)`` rather than
    ``loss.backward()`` and ``optimizer.step()``: the trainer routes them through its step engine,
    which scales fp16 losses and averages gradients across the processes of a distributed run.
    A recipe that calls PyTorch directly still trains in fp32 and bf16 on one process.
    """

    #: component slots, e.g. ``{"generator": Slot("generator", "unet_256"), ...}``
    slots: ClassVar[dict[str, Slot]]
    #: True when the recipe trains on aligned pairs (pix2pix), False for unpaired (CycleGAN)
    paired: ClassVar[bool] = True
    #: defaults for the ``[data]`` and ``[optim]`` sections of the run config
    data_defaults: ClassVar[dict[str, Any]] = {}
    optim_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, components: dict[str, nn.Module], **hparams: Any):
        self.components = components

    @property
    def generator(self) -> Generator:
        """The network that does the translation (what a checkpoint for inference holds)."""
        return self.components["generator"]  # type: ignore[return-value]

    def networks(self) -> dict[str, nn.Module]:
        """Trainable modules, by name, for checkpoints and device placement."""
        return {k: v for k, v in self.components.items() if any(True for _ in v.parameters())}

    @abc.abstractmethod
    def configure_optimizers(self, lr: float, betas: tuple[float, float]) -> dict[str, torch.optim.Optimizer]:
        """One optimizer per network group, by name."""

    @abc.abstractmethod
    def train_step(self, batch: dict[str, torch.Tensor], optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, torch.Tensor]:
        """Run one optimisation step on ``batch``; return the named losses (detached scalars)."""

    #: set by the trainer (:class:`imgtrans.training.engine.StepEngine`); None means plain PyTorch
    engine: Any = None

    def backward(self, loss: torch.Tensor) -> None:
        """Back-propagate ``loss`` (outside autocast; loss-scaled under fp16-mixed)."""
        if self.engine is None:
            loss.backward()
        else:
            self.engine.backward(loss)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """Apply ``optimizer`` (after averaging its gradients over processes; via the fp16 scaler)."""
        if self.engine is None:
            optimizer.step()
        else:
            self.engine.step(optimizer)

    def translate(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The output used for previews and validation."""
        return self.generator(batch["A"])

