"""Reading and writing images, and converting between pixels and network tensors.

Networks see float tensors in [-1, 1], channels first; files hold 8-bit pixels.  The channel
rule is one and documented: a 1-channel model gets greyscale (``L``), a 3-channel model gets
RGB, whatever the file stores (palette, RGBA and greyscale files are converted).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ..errors import DataError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name for a stable order."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and is_image(p))


def load_image(path: Path, channels: int = 3) -> np.ndarray:
    """Decode ``path`` to an ``H x W x channels`` uint8 array (EXIF orientation applied)."""
    if channels not in (1, 3):
        raise DataError(f"{path}: only 1- or 3-channel images are supported, not {channels}")
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            img = img.convert("L" if channels == 1 else "RGB")
            arr = np.asarray(img)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from exc
    return arr[:, :, None] if arr.ndim == 2 else arr


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """``H x W x C`` uint8 -> ``C x H x W`` float in [-1, 1]."""
    return torch.from_numpy(np.require(pixels, requirements=["C", "W"])).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def to_pixels(tensor: torch.Tensor) -> np.ndarray:
    """``C x H x W`` float in [-1, 1] -> ``H x W x C`` uint8 (rounded, clipped)."""
    t = tensor.detach().float().cpu().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return t.permute(1, 2, 0).numpy()


def save_image(pixels: np.ndarray, path: Path) -> None:
    """Write atomically: a reader (or a Ctrl-C) never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            img.save(fh, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
