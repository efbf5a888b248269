"""The CUT and FastCUT recipes, step for step as the reference's ``cut_model.py`` defines them.

One generator ``G`` (A to B), one discriminator ``D`` on domain B and the patch sampler ``F`` that
the recipe builds itself from ``G``'s encoder widths (an owned network: checkpointed, placed and
averaged like the slots').  One step: ``G`` translates real A (CUT: real A and real B in one batch,
for the identity term); ``D`` is updated on the detached fake and real B; then ``G`` and ``F``
together on the GAN loss plus PatchNCE, averaged over the encoder layers.  FastCUT drops the
identity term, weights PatchNCE by 10 and asks for flip equivariance: with probability 0.5 the
input is flipped and the output's features flipped back before they are compared.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from imgtrans.api import ConfigError, Recipe, RecipeOption, Slot, fast_adam

from .patchnce import PatchSampler

_NETWORK = {"norm": "instance"}


class CUT(Recipe):
    """CUT: one generator, one PatchGAN, LSGAN + PatchNCE over encoder patches (with identity NCE), unpaired data.

    Args:
        lambda_gan: weight of the generator's adversarial loss.
        lambda_nce: weight of PatchNCE (per layer, then averaged over the layers).
        nce_idt: also PatchNCE between real B and G(real B), averaged with the main term.
        nce_layers: the generator's encoder layers PatchNCE compares, comma-separated; empty: the
            generator's own default (CUT's generator: 0,4,8,12,16, the reference's).
        num_patches: patches sampled per layer and image.
        sampler_width: units of the patch sampler's MLPs (the reference's netF_nc).
        flip_equivariance: flip the input batch with probability 0.5 and flip the output's features back.
    """

    slots: ClassVar[dict[str, Slot]] = {
        "generator": Slot("generator", "cut_resnet_9blocks", _NETWORK),
        "discriminator": Slot("discriminator", "cut_patchgan_70", _NETWORK),
        "gan_loss": Slot("loss", "lsgan", role="adversarial"),
        "nce_loss": Slot("loss", "patchnce", role="feature"),
    }
    owned_networks: ClassVar[dict[str, str]] = {
        "patch_sampler": "F: an MLP per encoder layer projecting sampled patches for PatchNCE, "
                         "built from the generator's encoder widths"}
    directions: ClassVar[dict[str, str]] = {"AtoB": "generator"}
    paired = False
    optim_defaults: ClassVar[dict[str, Any]] = {"epochs": 200, "epochs_decay": 200}
    arg_constraints: ClassVar[dict[str, dict[str, Any]]] = {
        "lambda_gan": {"min": 0}, "lambda_nce": {"min": 0}, "num_patches": {"min": 1}, "sampler_width": {"min": 1}}
    options: ClassVar[tuple[RecipeOption, ...]] = (
        RecipeOption("--generator", ("generator.name",), "Generator with encoder features [cut_resnet_9blocks]."),
        RecipeOption("--discriminator", ("discriminator.name",), "Discriminator [cut_patchgan_70]."),
        RecipeOption("--gan-loss", ("gan_loss.name",), "Adversarial loss [lsgan]."),
        RecipeOption("--lambda-gan", ("recipe.lambda_gan",), "Weight of the adversarial loss [1].", float),
        RecipeOption("--lambda-nce", ("recipe.lambda_nce",), "Weight of PatchNCE [CUT 1, FastCUT 10].", float),
        RecipeOption("--nce-idt", ("recipe.nce_idt",), "Identity PatchNCE on real B [CUT on, FastCUT off].",
                     bool),
        RecipeOption("--nce-layers", ("recipe.nce_layers",),
                     "Encoder layers PatchNCE compares, e.g. 0,4,8,12,16 [the generator's default]."),
        RecipeOption("--num-patches", ("recipe.num_patches",), "Patches per layer and image [256].", int),
        RecipeOption("--flip-equivariance", ("recipe.flip_equivariance",),
                     "Random horizontal flips that the features must follow [CUT off, FastCUT on].", bool),
    )
    tiny_config: ClassVar[dict[str, dict[str, Any]]] = {
        "generator": {"ngf": 4}, "discriminator": {"ndf": 4}, "recipe": {"num_patches": 16, "sampler_width": 8},
        "data": {"load_size": 32, "crop_size": 32}}

    def __init__(self, components: dict[str, nn.Module], lambda_gan: float = 1.0, lambda_nce: float = 1.0,
                 nce_idt: bool = True, nce_layers: str = "", num_patches: int = 256, sampler_width: int = 256,
                 flip_equivariance: bool = False):
        super().__init__(components)
        self.net_g, self.net_d = components["generator"], components["discriminator"]
        self.gan_loss, self.nce_loss = components["gan_loss"], components["nce_loss"]
        self.lambda_gan, self.lambda_nce, self.nce_idt = lambda_gan, lambda_nce, nce_idt
        self.num_patches, self.flip_equivariance = num_patches, flip_equivariance
        if not self.net_g.encoder_layers:
            raise ConfigError(f"{type(self).__name__.lower()} needs a generator with encoder features "
                              f"(Generator.encode); {type(self.net_g).__name__} declares no encoder_layers "
                              "(use cut_resnet_9blocks, resnet_9blocks or a U-Net)")
        self.nce_layers = self._parse_layers(nce_layers)
        if nce_idt and self.net_g.in_channels != self.net_g.out_channels:
            raise ConfigError(f"the identity PatchNCE runs the generator on real B, which needs as many input as "
                              f"output channels ({self.net_g.in_channels} vs {self.net_g.out_channels}); "
                              "use --nce-idt false")
        channels = self.net_g.encoder_channels(self.nce_layers)
        self.sampler = self.add_network("patch_sampler", PatchSampler(channels, sampler_width))

    def _parse_layers(self, text: str) -> list[int]:
        if not text.strip():
            return list(self.net_g.encoder_layers)
        try:
            layers = [int(part) for part in text.split(",")]
        except ValueError:
            raise ConfigError(f"recipe.nce_layers must be comma-separated layer numbers such as 0,4,8,12,16, "
                              f"got {text!r}") from None
        return layers  # their range is the generator's to check (encoder_channels, below)

    @classmethod
    def derived_args(cls, specs: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """The discriminator judges domain B: it sees the generator's output channels."""
        return {"discriminator": {"in_channels": specs["generator"].args.get("out_channels", 3)}}

    def configure_optimizers(self, lr: float, betas: tuple[float, float]) -> dict[str, torch.optim.Optimizer]:
        return {"generator": fast_adam(self.net_g.parameters(), lr, betas),
                "discriminator": fast_adam(self.net_d.parameters(), lr, betas),
                "patch_sampler": fast_adam(self.sampler.parameters(), lr, betas)}

    def train_step(self, batch: dict[str, torch.Tensor], optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, torch.Tensor]:
        real_a, real_b = batch["A"], batch["B"]
        n = real_a.shape[0]
        real = torch.cat([real_a, real_b]) if self.nce_idt else real_a
        flipped = self.flip_equivariance and np.random.random() < 0.5  # numpy's stream, as the reference draws it
        if flipped:
            real = torch.flip(real, [3])
        fake = self.net_g(real)
        fake_b = fake[:n]
        idt_b = fake[n:] if self.nce_idt else None

        # D: (fake as fake + real B as real) / 2
        self.set_requires_grad([self.net_d], True)
        opt_d = optimizers["discriminator"]
        opt_d.zero_grad(set_to_none=True)
        loss_d_fake = self.gan_loss(self.net_d(fake_b.detach()), False)
        loss_d_real = self.gan_loss(self.net_d(real_b), True)
        self.backward((loss_d_fake + loss_d_real) * 0.5)
        self.step(opt_d)

        # G and F: adversarial + PatchNCE, with D frozen
        self.set_requires_grad([self.net_d], False)
        opt_g, opt_f = optimizers["generator"], optimizers["patch_sampler"]
        opt_g.zero_grad(set_to_none=True)
        opt_f.zero_grad(set_to_none=True)
        zero = fake_b.new_zeros(())
        loss_g_gan = self.gan_loss(self.net_d(fake_b), True) * self.lambda_gan if self.lambda_gan > 0 else zero
        losses = {"G_GAN": loss_g_gan}
        nce_total = zero
        if self.lambda_nce > 0:
            losses["NCE"] = nce_total = self.patch_nce(real_a, fake_b, flipped)
            if self.nce_idt:
                losses["NCE_Y"] = self.patch_nce(real_b, idt_b, flipped)
                nce_total = (losses["NCE"] + losses["NCE_Y"]) * 0.5
        losses["G"] = loss_g = loss_g_gan + nce_total
        self.backward(loss_g)
        self.step(opt_g)
        self.step(opt_f)
        return {"G_GAN": losses["G_GAN"].detach(), "D_real": loss_d_real.detach(), "D_fake": loss_d_fake.detach(),
                **{k: losses[k].detach() for k in ("G", "NCE", "NCE_Y") if k in losses}}

    def patch_nce(self, source: torch.Tensor, output: torch.Tensor, flipped: bool) -> torch.Tensor:
        """PatchNCE between ``source`` (keys) and the generator's ``output`` from it (queries), per
        layer times ``lambda_nce``, averaged over the layers."""
        queries = self.net_g.encode(output, self.nce_layers)
        if flipped:  # the output was made from the flipped input: flip its features back
            queries = [torch.flip(q, [3]) for q in queries]
        with torch.no_grad():  # keys are targets: PatchNCE lets no gradient into them (as the reference)
            keys = self.net_g.encode(source, self.nce_layers)
            key_patches, positions = self.sampler(keys, self.num_patches)
        query_patches, _ = self.sampler(queries, self.num_patches, positions)
        total = sum(self.nce_loss(q, k) * self.lambda_nce for q, k in zip(query_patches, key_patches))
        return total / len(self.nce_layers)

    def previews(self, batch: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
        """real_A | fake_B | real_B (| idt_B with the identity term)."""
        columns = [("real_A", batch["A"]), ("fake_B", self.net_g(batch["A"])), ("real_B", batch["B"])]
        return columns + ([("idt_B", self.net_g(batch["B"]))] if self.nce_idt else [])


class FastCUT(CUT):
    """FastCUT: CUT without the identity term, PatchNCE weighted 10 and flip equivariance; 150 + 50 epochs.

    Args:
        lambda_gan: weight of the generator's adversarial loss.
        lambda_nce: weight of PatchNCE (per layer, then averaged over the layers).
        nce_idt: also PatchNCE between real B and G(real B) (off in FastCUT).
        nce_layers: the generator's encoder layers PatchNCE compares, comma-separated; empty: the
            generator's own default (CUT's generator: 0,4,8,12,16, the reference's).
        num_patches: patches sampled per layer and image.
        sampler_width: units of the patch sampler's MLPs (the reference's netF_nc).
        flip_equivariance: flip the input batch with probability 0.5 and flip the output's features back.
    """

    optim_defaults: ClassVar[dict[str, Any]] = {"epochs": 150, "epochs_decay": 50}

    def __init__(self, components: dict[str, nn.Module], lambda_gan: float = 1.0, lambda_nce: float = 10.0,
                 nce_idt: bool = False, nce_layers: str = "", num_patches: int = 256, sampler_width: int = 256,
                 flip_equivariance: bool = True):
        super().__init__(components, lambda_gan, lambda_nce, nce_idt, nce_layers, num_patches, sampler_width,
                         flip_equivariance)
