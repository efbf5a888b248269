"""The pix2pix recipe: conditional GAN + lambda * L1 (Isola et al., 2017)."""
from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from imgtrans.api import ComponentSpec, Recipe, RecipeOption, Slot, fast_adam


class Pix2Pix(Recipe):
    """pix2pix: U-Net generator, conditional PatchGAN, GAN loss + lambda_l1 * L1 (paired data).

    Args:
        lambda_l1: weight of the L1 term against the GAN loss.
    """

    slots: ClassVar[dict[str, Slot]] = {
        "generator": Slot("generator", "unet_256"),
        "discriminator": Slot("discriminator", "patchgan_70"),
        "gan_loss": Slot("loss", "bce", role="adversarial"),
        "pixel_loss": Slot("loss", "l1", role="pixel"),
    }
    directions: ClassVar[dict[str, str]] = {"AtoB": "generator"}
    paired = True
    arg_constraints: ClassVar[dict[str, dict[str, Any]]] = {"lambda_l1": {"min": 0}}
    options: ClassVar[tuple[RecipeOption, ...]] = (
        RecipeOption("--generator", ("generator.name",), "Generator, e.g. unet_256 or unet_128 "
                     "(`imgtrans list generator`) [unet_256]."),
        RecipeOption("--discriminator", ("discriminator.name",), "Discriminator [patchgan_70]."),
        RecipeOption("--gan-loss", ("gan_loss.name",), "Adversarial loss: bce (the paper's) or lsgan [bce]."),
        RecipeOption("--lambda-l1", ("recipe.lambda_l1",), "Weight of the L1 term [100].", float),
    )

    tiny_config: ClassVar[dict[str, dict[str, Any]]] = {
        "generator": {"name": "unet", "num_downs": 5, "ngf": 4}, "discriminator": {"ndf": 4},
        "data": {"load_size": 32, "crop_size": 32}}

    def __init__(self, components: dict[str, nn.Module], lambda_l1: float = 100.0):
        super().__init__(components)
        self.lambda_l1 = lambda_l1
        self.net_g, self.discriminator = components["generator"], components["discriminator"]
        self.gan_loss, self.pixel_loss = components["gan_loss"], components["pixel_loss"]

    @classmethod
    def derived_args(cls, specs: dict[str, ComponentSpec]) -> dict[str, dict[str, Any]]:
        """The discriminator is conditional: it sees input and output channels together."""
        g = specs["generator"].args
        return {"discriminator": {"in_channels": g.get("in_channels", 3) + g.get("out_channels", 3)}}

    def configure_optimizers(self, lr: float, betas: tuple[float, float]) -> dict[str, torch.optim.Optimizer]:
        return {"generator": fast_adam(self.net_g.parameters(), lr, betas),
                "discriminator": fast_adam(self.discriminator.parameters(), lr, betas)}

    def train_step(self, batch: dict[str, torch.Tensor], optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, torch.Tensor]:
        real_a, real_b = batch["A"], batch["B"]
        fake_b = self.net_g(real_a)

        # Discriminator: halve the loss so D learns more slowly than G, as in the paper.
        self.set_requires_grad([self.discriminator], True)
        opt_d = optimizers["discriminator"]
        opt_d.zero_grad(set_to_none=True)
        loss_d_fake = self.gan_loss(self.discriminator(torch.cat([real_a, fake_b.detach()], 1)), False)
        loss_d_real = self.gan_loss(self.discriminator(torch.cat([real_a, real_b], 1)), True)
        loss_d = 0.5 * (loss_d_fake + loss_d_real)
        self.backward(loss_d)
        self.step(opt_d)

        # Generator: fool the (frozen) discriminator and stay close to the target.
        self.set_requires_grad([self.discriminator], False)
        opt_g = optimizers["generator"]
        opt_g.zero_grad(set_to_none=True)
        loss_g_gan = self.gan_loss(self.discriminator(torch.cat([real_a, fake_b], 1)), True)
        loss_g_l1 = self.pixel_loss(fake_b, real_b) * self.lambda_l1
        self.backward(loss_g_gan + loss_g_l1)
        self.step(opt_g)

        return {"G_GAN": loss_g_gan.detach(), "G_L1": loss_g_l1.detach(),
                "D_real": loss_d_real.detach(), "D_fake": loss_d_fake.detach()}
