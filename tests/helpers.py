"""Small builders shared by the tests."""
from __future__ import annotations

# the tiny dataset writers live in the conformance kit, which plugin authors use too
from imgtrans.testing.samples import write_aligned, write_unpaired

__all__ = ["TINY", "write_aligned", "write_unpaired"]

#: small pix2pix networks for 64x64 crops: a 6-level U-Net (stride 64) and a narrow PatchGAN
TINY = {"generator": {"name": "unet", "num_downs": 6, "ngf": 8}, "discriminator": {"ndf": 8}}
