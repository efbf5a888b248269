"""The example's networks and losses: a tiny generator (with encoder features), a tiny discriminator,
a Charbonnier pixel loss and an L1 feature loss."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from imgtrans.api import Discriminator, Generator, Loss


class TinyGenerator(Generator):
    """A tiny fully-convolutional generator: three 3x3 convolutions, a residual and a tanh.

    Any input size works (``stride = 1``); it is meant for demos and tests, not for quality.

    Args:
        in_channels: channels of the input images.
        out_channels: channels of the output images.
        width: channels of the hidden convolutions.
    """

    arg_constraints: ClassVar[dict[str, dict[str, Any]]] = {"width": {"min": 1}}

    def __init__(self, in_channels: int = 3, out_channels: int = 3, width: int = 8):
        super().__init__()
        # The core relies on these three attributes (padding at inference, checkpoints).
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, 1
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, out_channels, 3, padding=1),
        )
        # Learn a correction to the input when the channel counts allow it.
        self.residual = in_channels == out_channels
        # Encoder features (Generator.encode), for recipes with feature losses: layer i is the
        # output of body[i]; by default the two hidden activations.
        self.encoder_layers = (1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return torch.tanh(x + y if self.residual else y)  # outputs in [-1, 1], like the data

    def encode(self, x: torch.Tensor, layers: Sequence[int] | None = None) -> list[torch.Tensor]:
        """The outputs of ``body[i]`` for each layer ``i`` (default 1 and 3), computed by ``body`` itself."""
        return self.encode_sequential(self.body, x, layers)


class TinyDiscriminator(Discriminator):
    """A tiny patch discriminator: two strided 4x4 convolutions, one logit per 4x4 patch.

    For pix2pix it is conditional: it sees the input and the output concatenated on channels,
    6 in all (pix2pix sets ``in_channels`` from the generator's channels).

    Args:
        in_channels: channels of what it judges.
        width: channels of the hidden convolution.
    """

    arg_constraints: ClassVar[dict[str, dict[str, Any]]] = {"width": {"min": 1}}

    def __init__(self, in_channels: int = 6, width: int = 8):
        super().__init__()
        self.in_channels = in_channels
        self.body = nn.Sequential(nn.Conv2d(in_channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
                                  nn.Conv2d(width, 1, 4, stride=2, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # logits: the adversarial loss applies the sigmoid


class CharbonnierLoss(Loss):
    """Charbonnier distance, a smooth L1: mean of eps * (sqrt(1 + (d / eps)^2) - 1).

    Written so that identical images give exactly 0 (the common ``sqrt(d^2 + eps^2)`` form gives
    about ``eps``, which the conformance kit reports as breaking rule 'zero-on-identical').

    Args:
        eps: below this difference the loss is quadratic, above it linear.
    """

    role = "pixel"  # called as loss(prediction, target)
    arg_constraints: ClassVar[dict[str, dict[str, Any]]] = {"eps": {"gt": 0}}

    def __init__(self, eps: float = 1e-3):
        super().__init__()
        self.eps = eps

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        d = (prediction - target) / self.eps
        return (self.eps * (torch.sqrt(1 + d * d) - 1)).mean()


class FeatureL1Loss(Loss):
    """Feature matching: mean absolute difference between query and key features.

    A ``feature`` loss is called ``loss(query, key)`` on ``(N, P, C)`` tensors: ``P`` feature
    vectors of each of ``N`` images, row ``p`` of the query meant to match row ``p`` of the key.
    The key is a target, so it gets no gradient.
    """

    role = "feature"  # called as loss(query, key)

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        return (query - key.detach()).abs().mean()
