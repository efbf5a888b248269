"""Tiny image folders in the bundled dataset layouts, written by the conformance kit itself.

Plugin authors need no data of their own to check a recipe or a dataset format that reads one of
these layouts; the project's tests use the same writers.  The images are blocky (8 x 8 pixel
cells), and B is the colour inversion of A, so a pairing mistake (halves swapped, A and B from
different files) changes the pixels a check sees.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

#: layout name -> the number of training items the sample folder holds (the larger set when unpaired)
SAMPLE_ITEMS = 4
#: side of each square image (A and B) in the sample folders
SAMPLE_SIZE = 64


def _blocks(rng: np.random.Generator, size: int) -> np.ndarray:
    cells = (rng.random((size // 8, size // 8, 3)) * 255).astype(np.uint8)
    return np.kron(cells, np.ones((8, 8, 1), dtype=np.uint8))


def write_aligned(root: Path, split: str = "train", count: int = 4, size: int = 64, seed: int = 0) -> Path:
    """``root/split/pair_NN.png``: A | B side by side (the ``aligned`` layout), B = 255 - A."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / split
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        a = _blocks(rng, size)
        Image.fromarray(np.concatenate([a, 255 - a], axis=1)).save(folder / f"pair_{i:02d}.png")
    return Path(root)


def write_unpaired(root: Path, count: int = 4, size: int = 32, seed: int = 0, count_b: int | None = None) -> Path:
    """The CycleGAN layout (``unpaired``): ``trainA``/``trainB`` of unrelated images (``count`` and
    ``count_b`` of them), and ``testA``/``testB`` aligned by name (B the inversion of A), so the
    test split has ground truth."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for folder in ("trainA", "trainB", "testA", "testB"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(_blocks(rng, size)).save(root / "trainA" / f"a_{i:02d}.png")
        if count_b is None or i < count_b:
            Image.fromarray(255 - _blocks(rng, size)).save(root / "trainB" / f"b_{i + 1:02d}.png")
    for i in range(2):
        a = _blocks(rng, size)
        Image.fromarray(a).save(root / "testA" / f"t_{i:02d}.png")
        Image.fromarray(255 - a).save(root / "testB" / f"t_{i:02d}.png")
    return root


def write_paired_folders(root: Path, count: int = 4, size: int = 64, seed: int = 0) -> Path:
    """``root/train/A/x.png`` and ``root/train/B/x.png`` (the ``paired_folders`` layout)."""
    rng = np.random.default_rng(seed)
    for side in ("A", "B"):
        (Path(root) / "train" / side).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        a = _blocks(rng, size)
        Image.fromarray(a).save(Path(root) / "train" / "A" / f"img_{i:02d}.png")
        Image.fromarray(255 - a).save(Path(root) / "train" / "B" / f"img_{i:02d}.png")
    return Path(root)


def write_single(root: Path, count: int = 4, size: int = 64, seed: int = 0) -> Path:
    """A plain folder of images (the ``single`` layout)."""
    rng = np.random.default_rng(seed)
    Path(root).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(_blocks(rng, size)).save(Path(root) / f"img_{i:02d}.png")
    return Path(root)


def write_sample_layouts(workdir: Path) -> dict[str, Path]:
    """One small folder per bundled layout (``SAMPLE_ITEMS`` training items of ``SAMPLE_SIZE``
    pixels each), for the kit to find one a dataset format recognises; keyed by layout name."""
    workdir = Path(workdir)
    samples = {"aligned": workdir / "aligned", "paired_folders": workdir / "paired_folders",
               "unpaired": workdir / "unpaired", "single": workdir / "single"}
    if not samples["aligned"].exists():
        write_aligned(samples["aligned"], "train", count=SAMPLE_ITEMS, size=SAMPLE_SIZE)
        write_aligned(samples["aligned"], "test", count=2, size=SAMPLE_SIZE, seed=1)
        write_paired_folders(samples["paired_folders"], count=SAMPLE_ITEMS, size=SAMPLE_SIZE)
        # 4 A and 3 B: the length of an unpaired set is the larger one
        write_unpaired(samples["unpaired"], count=SAMPLE_ITEMS, size=SAMPLE_SIZE, count_b=SAMPLE_ITEMS - 1)
        write_single(samples["single"], count=SAMPLE_ITEMS, size=SAMPLE_SIZE)
    return samples
