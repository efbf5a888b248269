"""Small builders shared by the tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

#: small pix2pix networks for 64x64 crops: a 6-level U-Net (stride 64) and a narrow PatchGAN
TINY = {"generator": {"name": "unet", "num_downs": 6, "ngf": 8}, "discriminator": {"ndf": 8}}


def write_aligned(root: Path, split: str = "train", count: int = 4, size: int = 64, seed: int = 0) -> Path:
    """Aligned pairs whose B is a simple function of A (a colour inversion): learnable fast."""
    rng = np.random.default_rng(seed)
    folder = root / split
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        a = (rng.random((size // 8, size // 8, 3)) * 255).astype(np.uint8)
        a = np.kron(a, np.ones((8, 8, 1), dtype=np.uint8))
        Image.fromarray(np.concatenate([a, 255 - a], axis=1)).save(folder / f"pair_{i:02d}.png")
    return root
