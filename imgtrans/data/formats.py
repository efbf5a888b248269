"""On-disk dataset formats.  Each is registered as a ``dataset_format`` component by the core.

* ``aligned``: one image per pair, A on the left half and B on the right (the pix2pix layout),
  in ``ROOT/train``, ``ROOT/val``, ``ROOT/test``.
* ``paired_folders``: ``ROOT/SPLIT/A`` and ``ROOT/SPLIT/B`` (or ``ROOT/A``, ``ROOT/B``) with
  matching file names (matched by stem, so ``x.png`` pairs with ``x.jpg``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..interfaces import PairedDataset
from .images import list_images, load_image, to_tensor
from .transforms import PairedTransform

DIRECTIONS = ("AtoB", "BtoA")


def _split_dir(root: Path, split: str) -> Path:
    """``ROOT/split`` when it exists, else ``ROOT`` itself for a flat folder."""
    sub = root / split
    if sub.is_dir():
        return sub
    if root.is_dir() and not any((root / s).is_dir() for s in ("train", "val", "test")):
        return root
    present = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    raise DataError(f"{root} has no {split!r} split (found: {', '.join(present) or 'nothing'})")


class _PairedBase(PairedDataset):
    def __init__(self, root: str | Path, split: str = "train", transform: PairedTransform | None = None,
                 direction: str = "AtoB", in_channels: int = 3, out_channels: int = 3,
                 max_items: int | None = None, cache: bool = False):
        if direction not in DIRECTIONS:
            raise DataError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
        self.root, self.split, self.transform = Path(root), split, transform
        self.direction, self.in_channels, self.out_channels = direction, in_channels, out_channels
        self.items = self._index()[:max_items]
        # Decoded pixels of small datasets can stay in memory (per worker process): decoding is
        # then paid once per epoch-zero instead of every epoch.
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, str]] | None = {} if cache else None
        if not self.items:
            raise DataError(f"no image pairs found in {self.root} (split {split!r}, format {type(self).__name__})")

    def _index(self) -> list[Any]:
        raise NotImplementedError

    def _load_pair(self, item: Any) -> tuple[np.ndarray, np.ndarray, str]:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self._cache is not None and index in self._cache:
            left, right, path = self._cache[index]
        else:
            left, right, path = self._load_pair(self.items[index])
            if self._cache is not None:
                self._cache[index] = (left, right, path)
        src, dst = (left, right) if self.direction == "AtoB" else (right, left)
        if self.transform is not None:
            src, dst = self.transform(src, dst)
        return {"A": to_tensor(src), "B": to_tensor(dst), "path": path}

    def _channels(self) -> tuple[int, int]:
        """Channels to decode the stored A and B with, given the training direction."""
        if self.direction == "AtoB":
            return self.in_channels, self.out_channels
        return self.out_channels, self.in_channels


class AlignedDataset(_PairedBase):
    """Pairs stored side by side in one image (A | B)."""

    @staticmethod
    def detect(root: Path) -> bool:
        try:
            folder = _split_dir(root, "train")
        except DataError:
            folder = _split_dir(root, "test")
        images = list_images(folder) if folder.is_dir() else []
        return bool(images) and not (folder / "A").is_dir()

    def _index(self) -> list[Path]:
        return list_images(_split_dir(self.root, self.split))

    def _load_pair(self, path: Path) -> tuple[np.ndarray, np.ndarray, str]:
        c_left, c_right = self._channels()
        pixels = load_image(path, max(c_left, c_right))
        h, w = pixels.shape[:2]
        if w < 2:
            raise DataError(f"{path}: an aligned pair must be at least 2 pixels wide")
        half = w // 2
        left, right = pixels[:, :half], pixels[:, half:2 * half]
        return _to_channels(left, c_left), _to_channels(right, c_right), str(path)


class PairedFoldersDataset(_PairedBase):
    """Pairs stored as ``A/name`` and ``B/name``."""

    @staticmethod
    def detect(root: Path) -> bool:
        return any((d / "A").is_dir() and (d / "B").is_dir() for d in (root, root / "train", root / "test"))

    def _folder(self) -> Path:
        for base in (self.root / self.split, self.root):
            if (base / "A").is_dir() and (base / "B").is_dir():
                return base
        raise DataError(f"{self.root}: expected {self.split}/A and {self.split}/B (or A and B) folders")

    def _index(self) -> list[tuple[Path, Path]]:
        base = self._folder()
        a = {p.stem: p for p in list_images(base / "A")}
        b = {p.stem: p for p in list_images(base / "B")}
        unmatched = sorted(set(a) ^ set(b))
        if unmatched and not (set(a) & set(b)):
            raise DataError(f"{base}: no file names in common between A/ and B/")
        return [(a[s], b[s]) for s in sorted(set(a) & set(b))]

    def _load_pair(self, item: tuple[Path, Path]) -> tuple[np.ndarray, np.ndarray, str]:
        c_left, c_right = self._channels()
        left, right = load_image(item[0], c_left), load_image(item[1], c_right)
        if left.shape[:2] != right.shape[:2]:
            raise DataError(f"{item[0].name}: A is {left.shape[1]}x{left.shape[0]} but B is "
                            f"{right.shape[1]}x{right.shape[0]}; paired images must have the same size")
        return left, right, str(item[0])


def _to_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    if pixels.shape[2] == channels:
        return pixels
    if channels == 1:  # ITU-R 601 luma, as PIL's "L" conversion
        grey = pixels[..., 0] * 0.299 + pixels[..., 1] * 0.587 + pixels[..., 2] * 0.114
        return grey.round().astype(np.uint8)[:, :, None]
    return np.repeat(pixels, channels, axis=2)


FORMATS: dict[str, type[_PairedBase]] = {"aligned": AlignedDataset, "paired_folders": PairedFoldersDataset}


def detect_format(root: Path, candidates: dict[str, Any]) -> str:
    """The first registered format whose ``detect`` recognises ``root``."""
    for name, factory in candidates.items():
        detect = getattr(factory, "detect", None)
        if detect is not None and detect(Path(root)):
            return name
    raise DataError(f"cannot tell the format of {root}: expected aligned A|B images in train/ val/ test/, "
                    f"A/ and B/ folders, or trainA/ trainB/ folders; pass --set data.format=NAME to choose one of "
                    f"{', '.join(candidates)}")
