"""An example third-party imgtrans plugin: copy this package to start your own.

It registers a generator, ``example_tiny``, and a recipe, ``example_l1`` (a generator trained with
an L1 loss alone: no discriminator), through the ``register_components`` hook.  imgtrans finds
the plugin through the ``[project.entry-points.imgtrans]`` table of ``pyproject.toml``; nothing
in imgtrans itself has to change.  After ``pip install``::

    imgtrans list generator 'example*'
    imgtrans train pix2pix --data basemap --generator example_tiny
    imgtrans train example_l1 --data basemap --lambda 2
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from imgtrans import hookimpl
from imgtrans.interfaces import Generator, Recipe, RecipeOption, Slot


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


class L1Recipe(Recipe):
    """Regression to the target with an L1 loss: the smallest useful recipe (paired data, one network)."""

    slots: ClassVar[dict[str, Slot]] = {
        "generator": Slot("generator", "example_tiny"),
        "pixel_loss": Slot("loss", "l1"),
    }
    directions: ClassVar[dict[str, str]] = {"AtoB": "generator"}  # the model file holds this network
    paired = True  # an unpaired dataset is refused
    options: ClassVar[tuple[RecipeOption, ...]] = (
        RecipeOption("--lambda", ("recipe.weight",), "Weight of the L1 loss [1].", float),
    )
    tiny_config: ClassVar[dict[str, dict[str, Any]]] = {"data": {"load_size": 32, "crop_size": 32}}

    def __init__(self, components: dict[str, nn.Module], weight: float = 1.0):
        super().__init__(components)
        self.weight = weight

    def configure_optimizers(self, lr: float, betas: tuple[float, float]) -> dict[str, torch.optim.Optimizer]:
        return {"generator": torch.optim.Adam(self.components["generator"].parameters(), lr=lr, betas=betas)}

    def train_step(self, batch: dict[str, torch.Tensor],
                   optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, torch.Tensor]:
        optimizer = optimizers["generator"]
        optimizer.zero_grad(set_to_none=True)
        loss = self.components["pixel_loss"](self.components["generator"](batch["A"]), batch["B"]) * self.weight
        self.backward(loss)  # not loss.backward(): the trainer scales and averages gradients
        self.step(optimizer)
        return {"L1": loss.detach()}


@hookimpl
def register_components(registry) -> None:
    """Called once by imgtrans; each name must be unique across all installed plugins."""
    registry.generator("example_tiny", TinyGenerator)
    registry.recipe("example_l1", L1Recipe)
