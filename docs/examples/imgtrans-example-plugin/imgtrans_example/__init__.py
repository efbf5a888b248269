"""An example third-party imgtrans plugin: copy this package to start your own.

It registers one generator, ``example_tiny``, through the ``register_components`` hook.  imgtrans
finds the plugin through the ``[project.entry-points.imgtrans]`` table of ``pyproject.toml``;
nothing in imgtrans itself has to change.  After ``pip install``::

    imgtrans list generator 'example*'
    imgtrans train pix2pix --data basemap --generator example_tiny
"""
from __future__ import annotations

import torch
from torch import nn

from imgtrans import hookimpl
from imgtrans.interfaces import Generator


class TinyGenerator(Generator):
    """A tiny fully-convolutional generator: three 3x3 convolutions, a residual and a tanh.

    Any input size works (``stride = 1``); it is meant for demos and tests, not for quality.
    """

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return torch.tanh(x + y if self.residual else y)


@hookimpl
def register_components(registry) -> None:
    """Called once by imgtrans; each name must be unique across all installed plugins."""
    registry.generator("example_tiny", TinyGenerator)
