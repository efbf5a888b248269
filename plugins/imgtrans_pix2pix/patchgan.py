"""PatchGAN discriminator (the reference's ``basic`` / ``n_layers`` discriminator).

With ``n_layers = 3`` every output logit sees a 70x70 patch; a 256x256 input gives 30x30 logits.
Layer order matches the reference checkpoints (``model.0`` ... ``model.11``).
"""
from __future__ import annotations

import torch
from torch import nn

from imgtrans.api import Discriminator

from .layers import NETWORK_CONSTRAINTS, conv_bias, init_weights, norm_layer


class PatchGAN(Discriminator):
    """Conditional PatchGAN: feed the input and the (real or generated) output concatenated on channels.

    Args:
        in_channels: channels it sees: input plus output channels for pix2pix (set by the recipe).
        ndf: channels of the first convolution (doubled per layer, up to 8x).
        n_layers: stride-2 layers; 3 gives 70x70 receptive fields.
        norm: normalisation layers: batch, instance or none.
    """

    arg_constraints = {"in_channels": {"min": 1}, "norm": NETWORK_CONSTRAINTS["norm"], "ndf": {"min": 1},
                       "n_layers": {"min": 1}}

    def __init__(self, in_channels: int = 6, ndf: int = 64, n_layers: int = 3, norm: str = "batch"):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be at least 1, got {n_layers}")
        self.in_channels = in_channels
        make_norm, bias = norm_layer(norm), conv_bias(norm)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1  # the last widening conv keeps the resolution
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=bias),
                       make_norm(ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
