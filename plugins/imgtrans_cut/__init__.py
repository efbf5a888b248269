"""The CUT plugin (Park, Efros, Zhang and Zhu, ECCV 2020): contrastive unpaired translation with one
generator, one discriminator and PatchNCE over the generator's encoder features.

Registers the recipes ``cut`` and ``fastcut``, the anti-aliased ResNet generator and PatchGAN of
the CUT reference (``cut_resnet_9blocks``, ``cut_patchgan_70``) and the ``patchnce`` loss (role
``feature``).  Like every bundled plugin it imports only ``imgtrans.api`` and registers through the
``imgtrans`` entry-point group; it reuses the pix2pix plugin's ``lsgan`` loss by registry name.
"""
from __future__ import annotations

from imgtrans import hookimpl


@hookimpl
def register_components(registry) -> None:
    # by import path: torch and the modules are imported when a component is first built
    registry.generator("cut_resnet_9blocks", "imgtrans_cut.networks:CutResnet9Blocks")
    registry.discriminator("cut_patchgan_70", "imgtrans_cut.networks:CutPatchGAN")
    registry.loss("patchnce", "imgtrans_cut.patchnce:PatchNCELoss")
    registry.recipe("cut", "imgtrans_cut.recipe:CUT")
    registry.recipe("fastcut", "imgtrans_cut.recipe:FastCUT")
