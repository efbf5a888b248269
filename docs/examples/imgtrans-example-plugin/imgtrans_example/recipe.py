"""The example's recipe: a generator trained with a pixel loss alone (no discriminator)."""
from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from imgtrans.api import Recipe, RecipeOption, Slot


class L1Recipe(Recipe):
    """Regression to the target with an L1 loss: the smallest useful recipe (paired data, one network).

    Args:
        weight: weight of the pixel loss.
    """

    slots: ClassVar[dict[str, Slot]] = {
        "generator": Slot("generator", "example_tiny"),
        "pixel_loss": Slot("loss", "l1", role="pixel"),  # --set pixel_loss.name=example_charbonnier
    }
    directions: ClassVar[dict[str, str]] = {"AtoB": "generator"}  # the model file holds this network
    paired = True  # an unpaired dataset is refused
    options: ClassVar[tuple[RecipeOption, ...]] = (
        RecipeOption("--lambda", ("recipe.weight",), "Weight of the L1 loss [1].", float),
    )
    # what the conformance kit (imgtrans.testing) trains with: small crops, seconds on a CPU
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
