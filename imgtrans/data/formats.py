"""On-disk dataset formats.  Each is registered as a ``dataset_format`` component by the core.

* ``aligned``: one image per pair, A on the left half and B on the right (the pix2pix layout),
  in ``ROOT/train``, ``ROOT/val``, ``ROOT/test`` (or directly in ``ROOT``).  Detected only when
  the images are exactly twice as wide as high (two square halves, as in every public pix2pix
  dataset): a folder of ordinary images is not side-by-side pairs (``--format aligned`` reads
  other aspect ratios).
* ``paired_folders``: ``ROOT/SPLIT/A`` and ``ROOT/SPLIT/B`` (or ``ROOT/A``, ``ROOT/B``) with
  matching file names (matched by stem, so ``x.png`` pairs with ``x.jpg``).  Names found on one
  side only are skipped with a warning that counts and names them; no common name is an error.

How a folder's format is chosen is :mod:`imgtrans.data.detect`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..core.directions import DIRECTIONS
from ..core.interfaces import PairedDataset
from ..util.errors import DataError
from ..util.terminal import warn_stderr
from .images import list_images, load_image, to_tensor
from .transforms import PairedTransform

#: images whose header ``AlignedDataset.detect`` reads (the first ones by name)
DETECT_SAMPLE = 8
#: unmatched names listed in the paired-folders warning
NAMES_SHOWN = 5


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
    """What the paired formats share: the index of pairs, decoding, the direction and the cache.

    Args:
        cache: keep decoded pixels in memory (per loader process) after the first epoch.
    """

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

    specificity = 20

    @staticmethod
    def detect(root: Path) -> bool:
        """Images exactly twice as wide as high in ``train/`` (else ``test/``, ``val/``, else the
        folder itself when it has none of them); the first few by name are read (headers only)."""
        root = Path(root)
        folder = next((root / s for s in ("train", "test", "val") if (root / s).is_dir()), root)
        if not folder.is_dir() or (folder / "A").is_dir():
            return False
        sizes = []
        for path in list_images(folder)[:DETECT_SAMPLE]:
            try:
                with Image.open(path) as img:
                    sizes.append(img.size)
            except Exception:  # unreadable files are reported when the dataset is read
                continue
        return bool(sizes) and all(w == 2 * h for w, h in sizes)

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

    specificity = 30

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
        a, b = _by_stem(base / "A"), _by_stem(base / "B")
        common = sorted(set(a) & set(b))
        if not common:
            raise DataError(f"{base}: no file names in common between A/ ({len(a)} images) and B/ ({len(b)} "
                            "images); pairs are matched by name without extension (A/x.png with B/x.jpg)")
        unmatched = [f"{side}/ only: {_some(sorted(set(mine) - set(other)))}"
                     for side, mine, other in (("A", a, b), ("B", b, a)) if set(mine) - set(other)]
        if unmatched:
            count = len(set(a) ^ set(b))
            warn_stderr(f"{base}: {count} image(s) with no partner of the same name are skipped "
                        f"({'; '.join(unmatched)}); {len(common)} pairs used")
        return [(a[s], b[s]) for s in common]

    def _load_pair(self, item: tuple[Path, Path]) -> tuple[np.ndarray, np.ndarray, str]:
        c_left, c_right = self._channels()
        left, right = load_image(item[0], c_left), load_image(item[1], c_right)
        if left.shape[:2] != right.shape[:2]:
            raise DataError(f"{item[0].name}: A is {left.shape[1]}x{left.shape[0]} but B is "
                            f"{right.shape[1]}x{right.shape[0]}; paired images must have the same size")
        return left, right, str(item[0])


def _by_stem(folder: Path) -> dict[str, Path]:
    """Images by name without extension; two files of one name (``x.jpg``, ``x.png``) cannot be paired
    unambiguously, so that is an error rather than a silent choice."""
    found: dict[str, Path] = {}
    for path in list_images(folder):
        if path.stem in found:
            raise DataError(f"{folder}: {found[path.stem].name} and {path.name} have the same name; pairs are "
                            "matched by name without extension, so keep one of them")
        found[path.stem] = path
    return found


def _some(names: list[str]) -> str:
    shown = ", ".join(names[:NAMES_SHOWN])
    return f"{shown}, ... ({len(names)} in all)" if len(names) > NAMES_SHOWN else shown


def _to_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    if pixels.shape[2] == channels:
        return pixels
    if channels == 1:  # ITU-R 601 luma, as PIL's "L" conversion
        grey = pixels[..., 0] * 0.299 + pixels[..., 1] * 0.587 + pixels[..., 2] * 0.114
        return grey.round().astype(np.uint8)[:, :, None]
    return np.repeat(pixels, channels, axis=2)


FORMATS: dict[str, type[_PairedBase]] = {"aligned": AlignedDataset, "paired_folders": PairedFoldersDataset}
