"""The example's recipe: a generator trained with a pixel loss alone (no discriminator)."""
from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from imgtrans.api import Recipe, RecipeOption, Slot


class L1Recipe(Recipe):
    """Regression to the target with an L1 loss: the smallest useful recipe (paired data, one network).

    Besides the pixel loss, the output's encoder features are matched to the target's: the
    generator's own encoder (``Generator.encode``) runs on both, and a ``feature`` loss compares
    them position by position.

    Args:
        weight: weight of the pixel loss.
        feature_weight: weight of the feature loss (0 turns it off, for generators without encode).
    """

    slots: ClassVar[dict[str, Slot]] = {
        "generator": Slot("generator", "example_tiny"),
        "pixel_loss": Slot("loss", "l1", role="pixel"),  # --set pixel_loss.name=example_charbonnier
        "feature_loss": Slot("loss", "example_feature_l1", role="feature"),
    }
    directions: ClassVar[dict[str, str]] = {"AtoB": "generator"}  # the model file holds this network
    paired = True  # an unpaired dataset is refused
    options: ClassVar[tuple[RecipeOption, ...]] = (
        RecipeOption("--lambda", ("recipe.weight",), "Weight of the L1 loss [1].", float),
    )
    # what the conformance kit (imgtrans.testing) trains with: small crops, seconds on a CPU
    tiny_config: ClassVar[dict[str, dict[str, Any]]] = {"data": {"load_size": 32, "crop_size": 32}}

    def __init__(self, components: dict[str, nn.Module], weight: float = 1.0, feature_weight: float = 0.1):
        super().__init__(components)
        self.weight, self.feature_weight = weight, feature_weight

    def configure_optimizers(self, lr: float, betas: tuple[float, float]) -> dict[str, torch.optim.Optimizer]:
        return {"generator": torch.optim.Adam(self.components["generator"].parameters(), lr=lr, betas=betas)}

    def train_step(self, batch: dict[str, torch.Tensor],
                   optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, torch.Tensor]:
        optimizer = optimizers["generator"]
        optimizer.zero_grad(set_to_none=True)
        generator = self.components["generator"]
        output = generator(batch["A"])
        loss = self.components["pixel_loss"](output, batch["B"]) * self.weight
        losses = {"L1": loss}
        if self.feature_weight > 0:
            # encoder features of the output against the target's: (N, C, H, W) -> (N, H*W, C) rows
            rows = [[f.flatten(2).transpose(1, 2) for f in generator.encode(image)] for image in (output, batch["B"])]
            losses["feature"] = sum(self.components["feature_loss"](q, k) for q, k in zip(*rows)) * self.feature_weight
        self.backward(sum(losses.values()))  # not loss.backward(): the trainer scales and averages gradients
        self.step(optimizer)
        return {name: value.detach() for name, value in losses.items()}
