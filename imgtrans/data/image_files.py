"""Which files are images and how outputs are written, without importing torch: translate plans
its inputs and outputs (and refuses a bad job in one line) before anything heavy is imported.
Decoding and encoding are :mod:`imgtrans.data.images`, which re-exports these names."""
from __future__ import annotations

from pathlib import Path

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})

#: output formats: file suffix and Pillow save options (PNG is lossless at any zlib level; level 1
#: writes about 3x faster than Pillow's default 6 for files about 9% larger; TIFF is lossless too)
FORMATS = {
    "png": (".png", {"format": "PNG", "compress_level": 1}),
    "jpg": (".jpg", {"format": "JPEG", "quality": 95}),
    "webp": (".webp", {"format": "WEBP", "quality": 95}),
    "tif": (".tif", {"format": "TIFF", "compression": "tiff_adobe_deflate"}),
}
SUFFIX_FORMATS = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp", ".tif": "tif", ".tiff": "tif"}


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name for a stable order."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and is_image(p))
