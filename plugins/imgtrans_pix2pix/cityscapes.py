"""Cityscapes -> aligned 256x256 photo|label pairs, from the user's own download.

Mirrors what the reference's preparation script does: the photo (``leftImg8bit``) and the colour
label image (``gtFine/*_gtFine_color.png``) of each frame are resized to 256x256 (bicubic for the
photo, nearest for the labels, so label colours stay exact) and stored side by side.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PIL import Image

from imgtrans.api import DataError

SIZE = 256
SPLITS = {"train": "train", "val": "val"}


def prepare_cityscapes(source: Path, dest: Path, *, progress: Callable[[str], None] | None = None) -> None:
    photos_root, labels_root = source / "leftImg8bit", source / "gtFine"
    if not photos_root.is_dir() or not labels_root.is_dir():
        raise DataError(f"{source} must contain leftImg8bit/ and gtFine/ (unzip leftImg8bit_trainvaltest.zip "
                        "and gtFine_trainvaltest.zip into it)")
    for split, out_split in SPLITS.items():
        photos = sorted((photos_root / split).glob("*/*_leftImg8bit.png"))
        out = dest / out_split
        out.mkdir(parents=True, exist_ok=True)
        if progress:
            progress(f"cityscapes {split}: {len(photos)} frames")
        for photo in photos:
            stem = photo.name.removesuffix("_leftImg8bit.png")
            label = labels_root / split / photo.parent.name / f"{stem}_gtFine_color.png"
            if not label.is_file():
                raise DataError(f"{photo}: no matching label image {label}")
            pair = Image.new("RGB", (2 * SIZE, SIZE))
            with Image.open(photo) as a, Image.open(label) as b:
                pair.paste(a.convert("RGB").resize((SIZE, SIZE), Image.BICUBIC), (0, 0))
                pair.paste(b.convert("RGB").resize((SIZE, SIZE), Image.NEAREST), (SIZE, 0))
            pair.save(out / f"{stem}.png")
