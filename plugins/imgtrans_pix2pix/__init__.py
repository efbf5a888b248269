"""The pix2pix plugin: U-Net and ResNet generators, PatchGAN, GAN/L1 losses, the pix2pix recipe, and
the public pix2pix and CycleGAN datasets.

Registered through the ``imgtrans`` entry-point group, exactly like a third-party plugin.
"""
from __future__ import annotations

from imgtrans import hookimpl


@hookimpl
def register_components(registry) -> None:
    from .losses import BCEGANLoss, L1Loss, LSGANLoss
    from .patchgan import PatchGAN
    from .recipe import Pix2Pix
    from .resnet import Resnet6Blocks, Resnet9Blocks
    from .unet import Unet128, Unet256, UnetGenerator

    registry.generator("unet", UnetGenerator)
    registry.generator("unet_256", Unet256)
    registry.generator("unet_128", Unet128)
    registry.generator("resnet_9blocks", Resnet9Blocks)
    registry.generator("resnet_6blocks", Resnet6Blocks)
    registry.discriminator("patchgan_70", PatchGAN)
    registry.loss("bce", BCEGANLoss)
    registry.loss("lsgan", LSGANLoss)
    registry.loss("l1", L1Loss)
    registry.recipe("pix2pix", Pix2Pix)


@hookimpl
def register_datasets(catalog) -> None:
    from .catalog import register

    register(catalog)
