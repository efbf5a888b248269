"""The example's data: an "A above B" dataset format, a small named dataset built locally in it,
and a pair maker for ``imgtrans data make``."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from imgtrans.api import DataError, PairedDataset, PairMaker, list_images, load_image, to_tensor

#: images ``detect`` looks at (headers only)
DETECT_SAMPLE = 8


class AAboveB(PairedDataset):
    """Pairs stored one above the other in one image: A on top, B below.

    Reads ``ROOT/SPLIT`` (or ``ROOT`` itself when it has no such folder).  Detected when the images
    are exactly twice as high as wide; a flat folder of such images also looks like the bundled
    ``single`` format (specificity 0), hence a higher ``specificity``.
    """

    specificity = 10

    def __init__(self, root: str | Path, split: str = "train", transform: Any = None, direction: str = "AtoB",
                 in_channels: int = 3, out_channels: int = 3, max_items: int | None = None):
        if direction not in ("AtoB", "BtoA"):
            raise DataError(f"direction must be AtoB or BtoA, not {direction!r}")
        folder = Path(root) / split if (Path(root) / split).is_dir() else Path(root)
        self.paths = list_images(folder)[:max_items]
        if not self.paths:
            raise DataError(f"no images in {folder} (format a_above_b)")
        self.transform, self.direction = transform, direction
        self.in_channels, self.out_channels = in_channels, out_channels

    @staticmethod
    def detect(root: Path) -> bool:
        folder = next((Path(root) / s for s in ("train", "test") if (Path(root) / s).is_dir()), Path(root))
        sizes = []
        for path in list_images(folder)[:DETECT_SAMPLE] if folder.is_dir() else []:
            with Image.open(path) as img:
                sizes.append(img.size)
        return bool(sizes) and all(h == 2 * w for w, h in sizes)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.paths[index]
        # A (the network input) is decoded with in_channels, B with out_channels
        first, second = ("top", "bottom") if self.direction == "AtoB" else ("bottom", "top")
        a = self._half(path, first, self.in_channels)
        b = self._half(path, second, self.out_channels)
        if self.transform is not None:
            a, b = self.transform(a, b)  # one random crop and flip for both
        return {"A": to_tensor(a), "B": to_tensor(b), "path": str(path)}

    @staticmethod
    def _half(path: Path, which: str, channels: int) -> np.ndarray:
        pixels = load_image(path, channels)
        half = pixels.shape[0] // 2
        return pixels[:half] if which == "top" else pixels[half:2 * half]


def write_stripes(folder: Path, count: int, seed: int, side: int = 32) -> None:
    """``count`` images of vertical colour stripes (A, on top) above their colour inversion (B)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        colours = rng.integers(0, 256, (1, side // 4, 3), dtype=np.uint8)
        a = np.repeat(np.repeat(colours, 4, axis=1), side, axis=0)
        Image.fromarray(np.concatenate([a, 255 - a], axis=0)).save(folder / f"stripes_{i:02d}.png")


def build_stripes(dest: Path, progress: Callable[[str], None] | None = None) -> None:
    """Build ``example_stripes`` into ``dest`` (which does not exist yet; imgtrans renames it into
    the cache once this returns)."""
    if progress:
        progress("drawing 10 stripe images")
    write_stripes(Path(dest) / "train", 8, seed=0)
    write_stripes(Path(dest) / "test", 2, seed=1)


class Posterize(PairMaker):
    """Posterized copy (each colour channel cut to a few bits, Pillow): posterized -> photo.

    ``imgtrans data make example_posterize PHOTOS OUT --set example_posterize.bits=3`` makes a
    dataset of such pairs.  The ``rng`` argument is unused: the result depends on the photo alone.
    """

    arg_constraints = {"bits": {"min": 1, "max": 7, "help": "bits kept per colour channel"}}

    def __init__(self, bits: int = 2):
        self.bits = bits

    def __call__(self, photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.asarray(ImageOps.posterize(Image.fromarray(photo), self.bits))
