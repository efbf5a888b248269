"""The CycleGAN plugin (Zhu et al., 2017): unpaired translation with two generators, two
discriminators, cycle-consistency and identity losses, and image pools.

It reuses the pix2pix plugin's ``resnet_9blocks`` generator, PatchGAN and GAN/L1 losses by
*registry name* only (no import between plugins), and registers through the ``imgtrans``
entry-point group like any third-party plugin.
"""
from __future__ import annotations

from imgtrans import hookimpl


@hookimpl
def register_components(registry) -> None:
    registry.recipe("cyclegan", "imgtrans_cyclegan.recipe:CycleGAN")  # imported when first used
