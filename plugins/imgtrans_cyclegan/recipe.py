"""The CycleGAN recipe, step for step as the reference's ``cycle_gan_model.py`` defines it.

``generator_a`` (G_A) maps A to B and ``generator_b`` (G_B) maps B to A; ``discriminator_a``
(D_A) judges domain B (real B against G_A's fakes) and ``discriminator_b`` (D_B) judges domain A.
One step updates both generators together (with the discriminators frozen), then both
discriminators on pooled fakes from before the generator step.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from imgtrans.api import ConfigError, Recipe, RecipeOption, Slot, fast_adam

from .pool import ImagePool

_GENERATOR = {"norm": "instance", "dropout": False}
_DISCRIMINATOR = {"norm": "instance"}  # in_channels follow the generators (derived_args)


class CycleGAN(Recipe):
    """CycleGAN: two ResNet generators, two PatchGANs, LSGAN + cycle (lambda 10) + identity (0.5), unpaired data.

    Args:
        lambda_a: weight of the A -> B -> A cycle loss.
        lambda_b: weight of the B -> A -> B cycle loss.
        lambda_identity: identity loss weight, relative to the cycle weights; 0 turns it off.
        pool_size: generated images remembered for the discriminators; 0 turns the pool off.
    """

    slots: ClassVar[dict[str, Slot]] = {
        "generator_a": Slot("generator", "resnet_9blocks", _GENERATOR),
        "generator_b": Slot("generator", "resnet_9blocks", _GENERATOR),
        "discriminator_a": Slot("discriminator", "patchgan_70", _DISCRIMINATOR),
        "discriminator_b": Slot("discriminator", "patchgan_70", _DISCRIMINATOR),
        "gan_loss": Slot("loss", "lsgan", role="adversarial"),
        "cycle_loss": Slot("loss", "l1", role="pixel"),
        "identity_loss": Slot("loss", "l1", role="pixel"),
    }
    directions: ClassVar[dict[str, str]] = {"AtoB": "generator_a", "BtoA": "generator_b"}
    paired = False
    arg_constraints: ClassVar[dict[str, dict[str, Any]]] = {
        "lambda_a": {"min": 0}, "lambda_b": {"min": 0}, "lambda_identity": {"min": 0}, "pool_size": {"min": 0}}
    options: ClassVar[tuple[RecipeOption, ...]] = (
        RecipeOption("--generator", ("generator_a.name", "generator_b.name"),
                     "Both generators, e.g. resnet_9blocks or resnet_6blocks [resnet_9blocks]."),
        RecipeOption("--discriminator", ("discriminator_a.name", "discriminator_b.name"),
                     "Both discriminators [patchgan_70, 3 channels, instance norm]."),
        RecipeOption("--gan-loss", ("gan_loss.name",), "Adversarial loss: lsgan (the paper's) or bce [lsgan]."),
        RecipeOption("--lambda-a", ("recipe.lambda_a",), "Weight of the A -> B -> A cycle loss [10].", float),
        RecipeOption("--lambda-b", ("recipe.lambda_b",), "Weight of the B -> A -> B cycle loss [10].", float),
        RecipeOption("--lambda-identity", ("recipe.lambda_identity",),
                     "Identity loss weight, relative to the cycle weights; 0 turns it off [0.5].", float),
        RecipeOption("--pool-size", ("recipe.pool_size",),
                     "Generated images remembered for the discriminators; 0 turns the pool off [50].", int),
    )

    tiny_config: ClassVar[dict[str, dict[str, Any]]] = {
        "generator_a": {"ngf": 4}, "generator_b": {"ngf": 4},
        "discriminator_a": {"ndf": 4}, "discriminator_b": {"ndf": 4}, "recipe": {"pool_size": 3},
        "data": {"load_size": 32, "crop_size": 32}}

    def __init__(self, components: dict[str, nn.Module], lambda_a: float = 10.0, lambda_b: float = 10.0,
                 lambda_identity: float = 0.5, pool_size: int = 50):
        super().__init__(components)
        self.g_a, self.g_b = components["generator_a"], components["generator_b"]
        self.d_a, self.d_b = components["discriminator_a"], components["discriminator_b"]
        self.gan_loss, self.cycle_loss = components["gan_loss"], components["cycle_loss"]
        self.identity_loss = components["identity_loss"]
        self.lambda_a, self.lambda_b, self.lambda_identity = lambda_a, lambda_b, lambda_identity
        if lambda_identity > 0 and self.g_a.in_channels != self.g_a.out_channels:
            raise ConfigError(f"the identity loss needs as many input as output channels "
                              f"({self.g_a.in_channels} vs {self.g_a.out_channels}); "
                              "use --lambda-identity 0")
        self.pool_a, self.pool_b = ImagePool(pool_size), ImagePool(pool_size)

    @classmethod
    def derived_args(cls, specs: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """G_B maps back, so its channels mirror G_A's; each discriminator sees one domain."""
        g = specs["generator_a"].args
        c_in, c_out = g.get("in_channels", 3), g.get("out_channels", 3)
        return {"generator_b": {"in_channels": c_out, "out_channels": c_in},
                "discriminator_a": {"in_channels": c_out}, "discriminator_b": {"in_channels": c_in}}

    def configure_optimizers(self, lr: float, betas: tuple[float, float]) -> dict[str, torch.optim.Optimizer]:
        return {"generators": fast_adam([*self.g_a.parameters(), *self.g_b.parameters()], lr, betas),
                "discriminators": fast_adam([*self.d_a.parameters(), *self.d_b.parameters()], lr, betas)}

    def train_step(self, batch: dict[str, torch.Tensor], optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, torch.Tensor]:
        real_a, real_b = batch["A"], batch["B"]
        fake_b = self.g_a(real_a)
        rec_a = self.g_b(fake_b)
        fake_a = self.g_b(real_b)
        rec_b = self.g_a(fake_a)

        # Generators, with the discriminators frozen.
        self.set_requires_grad([self.d_a, self.d_b], False)
        opt_g = optimizers["generators"]
        opt_g.zero_grad(set_to_none=True)
        losses: dict[str, torch.Tensor] = {}
        if self.lambda_identity > 0:
            losses["idt_A"] = self.identity_loss(self.g_a(real_b), real_b) * self.lambda_b * self.lambda_identity
            losses["idt_B"] = self.identity_loss(self.g_b(real_a), real_a) * self.lambda_a * self.lambda_identity
        losses["G_A"] = self.gan_loss(self.d_a(fake_b), True)
        losses["G_B"] = self.gan_loss(self.d_b(fake_a), True)
        losses["cycle_A"] = self.cycle_loss(rec_a, real_a) * self.lambda_a
        losses["cycle_B"] = self.cycle_loss(rec_b, real_b) * self.lambda_b
        self.backward(sum(losses.values()))
        self.step(opt_g)

        # Discriminators, on pooled fakes from before the generator step.
        self.set_requires_grad([self.d_a, self.d_b], True)
        opt_d = optimizers["discriminators"]
        opt_d.zero_grad(set_to_none=True)
        losses["D_A"] = self._discriminator_loss(self.d_a, real_b, self.pool_b.query(fake_b))
        self.backward(losses["D_A"])
        losses["D_B"] = self._discriminator_loss(self.d_b, real_a, self.pool_a.query(fake_a))
        self.backward(losses["D_B"])
        self.step(opt_d)
        return {k: v.detach() for k, v in losses.items()}

    def _discriminator_loss(self, net: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.gan_loss(net(real), True) + self.gan_loss(net(fake.detach()), False))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The two image pools (a resumed run must draw from the same history)."""
        return {name: images for name, pool in (("pool_A", self.pool_a), ("pool_B", self.pool_b))
                if (images := pool.state()) is not None}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        device = next(self.g_a.parameters()).device
        self.pool_a.restore(state.get("pool_A"), device)
        self.pool_b.restore(state.get("pool_B"), device)

    def previews(self, batch: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
        """real_A | fake_B | rec_A | real_B | fake_A | rec_B."""
        fake_b, fake_a = self.g_a(batch["A"]), self.g_b(batch["B"])
        return [("real_A", batch["A"]), ("fake_B", fake_b), ("rec_A", self.g_b(fake_b)),
                ("real_B", batch["B"]), ("fake_A", fake_a), ("rec_B", self.g_a(fake_a))]
