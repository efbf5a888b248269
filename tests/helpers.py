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


def write_unpaired(root: Path, count: int = 4, size: int = 32, seed: int = 0) -> Path:
    """The CycleGAN layout: trainA/trainB of unrelated blocky images, and testA/testB aligned by
    name (B the colour inversion of A), so the test split has ground truth like basemap_unpaired."""
    rng = np.random.default_rng(seed)

    def blocks() -> np.ndarray:
        a = (rng.random((size // 8, size // 8, 3)) * 255).astype(np.uint8)
        return np.kron(a, np.ones((8, 8, 1), dtype=np.uint8))

    for folder in ("trainA", "trainB", "testA", "testB"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(blocks()).save(root / "trainA" / f"a_{i:02d}.png")
        Image.fromarray(255 - blocks()).save(root / "trainB" / f"b_{i + 1:02d}.png")
    for i in range(2):
        a = blocks()
        Image.fromarray(a).save(root / "testA" / f"t_{i:02d}.png")
        Image.fromarray(255 - a).save(root / "testB" / f"t_{i:02d}.png")
    return root
