"""Unpaired dataset formats, registered by the core next to the paired ones (``formats.py``).

* ``unpaired``: the CycleGAN layout, ``ROOT/trainA``, ``ROOT/trainB``, ``ROOT/testA``,
  ``ROOT/testB`` (split ``S`` reads ``ROOT/SA`` and ``ROOT/SB``).  ``A`` and ``B`` are two image
  sets with no correspondence; each item pairs one ``A`` image with a ``B`` image drawn
  independently of it.
* ``single``: a plain folder of images (``ROOT/SPLIT`` when it exists, else ``ROOT``), for
  translating or evaluating one domain, e.g. ``SingleFolder(root, split="testA")`` on a CycleGAN
  layout.  Items have ``A`` only.

Both take the same constructor keywords as the paired formats (``root, split, transform,
direction, in_channels, out_channels, max_items``), so the trainer builds any format the same way.

Auto-detection (:mod:`imgtrans.data.detect`) ranks the formats that recognise a folder by their
declared ``specificity``: ``unpaired`` (30) recognises ``trainA``/``trainB`` or ``testA``/``testB``
folders; ``single`` (0) any folder of images without split or domain subfolders, so it is chosen
only when nothing more specific (such as ``aligned`` for images twice as wide as high) matches.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from ..core.directions import DIRECTIONS
from ..core.interfaces import DatasetFormat, UnpairedDataset
from ..util.errors import DataError
from .images import list_images, load_image, to_tensor

#: subfolders that make a folder a structured dataset rather than a plain folder of images
STRUCTURE_FOLDERS = ("A", "B", "train", "val", "test", "trainA", "trainB", "valA", "valB", "testA", "testB")


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise DataError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")


def _apply_single(transform: Any, pixels: np.ndarray) -> np.ndarray:
    """One independent random draw for one image (``PairedTransform.single``, or any paired callable)."""
    if transform is None:
        return pixels
    single = getattr(transform, "single", None)
    return single(pixels) if single is not None else transform(pixels, pixels)[0]


def _subfolders(root: Path) -> str:
    return ", ".join(sorted(p.name for p in root.iterdir() if p.is_dir())) if root.is_dir() else ""


class UnpairedFolders(UnpairedDataset):
    """Two unaligned image sets in ``ROOT/{split}A`` and ``ROOT/{split}B`` (the CycleGAN layout).

    Items are ``{"A", "B", "path_A", "path_B"}``, tensors in [-1, 1] already in the training
    direction (``direction="BtoA"`` swaps the folders, so ``A`` is always the network input,
    decoded with ``in_channels``; ``B`` with ``out_channels``).  The length is the larger set;
    item ``i`` uses ``A[i % len(A)]`` and

    * ``serial=True``: ``B[i % len(B)]`` (both sets sorted by name, so equally named test sets such
      as ``basemap_unpaired``'s ``testA``/``testB`` come out aligned);
    * otherwise a random ``B``.  The reference draws a fresh random index at every access; here the
      draw is a pure function of ``(seed, epoch, i)`` (``random.Random(f"{seed}/{epoch}/{i}")``, a
      SHA-512-seeded generator, so it does not depend on ``PYTHONHASHSEED``), which makes a run
      reproducible and resumable and behaves the same in every DataLoader worker.  Call
      :meth:`set_epoch` at the start of each epoch so ``A`` images meet different ``B`` images
      from one epoch to the next (otherwise, with a fixed pairing, about a third of a larger
      ``B`` set would never be drawn).

    ``transform`` is applied to ``A`` and ``B`` independently (separate crops and flips).
    ``max_items`` caps each set separately, as the reference's ``max_dataset_size`` does.

    Args:
        serial: pair A[i] with B[i] (sorted by name) instead of a random B.
        seed: seed of the random B draws (the trainer sets the run's).
    """

    specificity = 30

    def __init__(self, root: str | Path, split: str = "train", transform: Any = None, direction: str = "AtoB",
                 in_channels: int = 3, out_channels: int = 3, max_items: int | None = None,
                 serial: bool = False, seed: int = 0):
        _check_direction(direction)
        self.root, self.split, self.transform, self.direction = Path(root), split, transform, direction
        self.in_channels, self.out_channels = in_channels, out_channels
        self.serial, self.seed, self.epoch = serial, seed, 0
        first, second = (self.root / f"{split}A", self.root / f"{split}B")
        if direction == "BtoA":
            first, second = second, first
        for folder in (first, second):
            if not folder.is_dir():
                raise DataError(f"{self.root} has no {folder.name}/ folder (split {split!r}, format unpaired; "
                                f"found: {_subfolders(self.root) or 'nothing'})")
        self.dir_A, self.dir_B = first, second
        self.paths_A = list_images(first)[:max_items]
        self.paths_B = list_images(second)[:max_items]
        for folder, paths in ((first, self.paths_A), (second, self.paths_B)):
            if not paths:
                raise DataError(f"no images in {folder} (format unpaired)")

    @staticmethod
    def detect(root: Path) -> bool:
        root = Path(root)
        return any((root / f"{s}A").is_dir() and (root / f"{s}B").is_dir() for s in ("train", "test"))

    draws_per_epoch = True

    def set_seed(self, seed: int) -> None:
        self.seed = int(seed)

    def pair_by_index(self) -> None:
        self.serial = True

    def set_epoch(self, epoch: int) -> None:
        """Choose the random ``B`` draws of ``epoch`` (no effect with ``serial=True``)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return max(len(self.paths_A), len(self.paths_B))

    def aligned(self) -> bool:
        """Whether item ``i`` pairs equally named files (``serial`` on sets of the same names, like
        basemap_unpaired's test band): then B is ground truth for A and the split can be scored."""
        return (self.serial and len(self.paths_A) == len(self.paths_B)
                and all(a.name == b.name for a, b in zip(self.paths_A, self.paths_B)))

    def indices(self, index: int) -> tuple[int, int]:
        """The ``(A, B)`` file indices item ``index`` reads in the current epoch."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        if self.serial:
            b = index % len(self.paths_B)
        else:
            b = random.Random(f"{self.seed}/{self.epoch}/{index}").randrange(len(self.paths_B))
        return index % len(self.paths_A), b

    def __getitem__(self, index: int) -> dict[str, Any]:
        ia, ib = self.indices(index)
        path_a, path_b = self.paths_A[ia], self.paths_B[ib]
        a = _apply_single(self.transform, load_image(path_a, self.in_channels))
        b = _apply_single(self.transform, load_image(path_b, self.out_channels))
        return {"A": to_tensor(a), "B": to_tensor(b), "path_A": str(path_a), "path_B": str(path_b)}


class SingleFolder(Dataset, DatasetFormat):
    """A plain folder of images of one domain (for translating or evaluating an unpaired test set).

    Reads ``ROOT/split`` when it is a folder (so ``split="testA"`` reads a CycleGAN test set), else
    the images directly in ``ROOT``.  Items are ``{"A", "path"}``: ``A`` is the network input
    whatever ``direction`` says, decoded with ``in_channels`` (``direction`` and ``out_channels``
    are accepted so every format is built with the same keywords).  ``transform`` is applied per
    image.
    """

    specificity = 0  # any folder of images: the least specific format

    def __init__(self, root: str | Path, split: str = "train", transform: Any = None, direction: str = "AtoB",
                 in_channels: int = 3, out_channels: int = 3, max_items: int | None = None):
        _check_direction(direction)
        self.root, self.split, self.transform, self.direction = Path(root), split, transform, direction
        self.in_channels, self.out_channels = in_channels, out_channels
        self.folder = self._folder()
        self.paths = list_images(self.folder)[:max_items]
        if not self.paths:
            raise DataError(f"no images in {self.folder} (format single)")

    def _folder(self) -> Path:
        sub = self.root / self.split
        if sub.is_dir():
            return sub
        if self.root.is_dir() and list_images(self.root):
            return self.root
        raise DataError(f"{self.root} has no {self.split!r} folder and no images of its own "
                        f"(found: {_subfolders(self.root) or 'nothing'})")

    @staticmethod
    def detect(root: Path) -> bool:
        """Images directly in ``root`` and no split or domain subfolders (``A``, ``train``, ``trainA``...)."""
        root = Path(root)
        if not root.is_dir() or any((root / name).is_dir() for name in STRUCTURE_FOLDERS):
            return False
        return bool(list_images(root))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.paths[index]
        pixels = _apply_single(self.transform, load_image(path, self.in_channels))
        return {"A": to_tensor(pixels), "path": str(path)}


FORMATS: dict[str, type] = {"unpaired": UnpairedFolders, "single": SingleFolder}
