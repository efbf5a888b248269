"""The pix2pix plugin: U-Net and ResNet generators, PatchGAN, GAN/L1 losses, the pix2pix recipe, and
the public pix2pix and CycleGAN datasets.

Registered through the ``imgtrans`` entry-point group, exactly like a third-party plugin.
"""
from __future__ import annotations

from imgtrans import hookimpl


@hookimpl
def register_components(registry) -> None:
    # by import path: the modules (and torch) are imported when a component is first built
    registry.generator("unet", "imgtrans_pix2pix.unet:UnetGenerator")
    registry.generator("unet_256", "imgtrans_pix2pix.unet:Unet256")
    registry.generator("unet_128", "imgtrans_pix2pix.unet:Unet128")
    registry.generator("resnet_9blocks", "imgtrans_pix2pix.resnet:Resnet9Blocks")
    registry.generator("resnet_6blocks", "imgtrans_pix2pix.resnet:Resnet6Blocks")
    registry.discriminator("patchgan_70", "imgtrans_pix2pix.patchgan:PatchGAN")
    registry.loss("bce", "imgtrans_pix2pix.losses:BCEGANLoss")
    registry.loss("lsgan", "imgtrans_pix2pix.losses:LSGANLoss")
    registry.loss("l1", "imgtrans_pix2pix.losses:L1Loss")
    registry.recipe("pix2pix", "imgtrans_pix2pix.recipe:Pix2Pix")


@hookimpl
def register_datasets(catalog) -> None:
    from .catalog import register

    register(catalog)
