"""Regenerate the pictures of docs/datasets.md ("Making pairs from photos"): one A | B pair per
built-in pair maker, made from scikit-image's sample photo of a cat (``skimage.data.chelsea``),
exactly as ``imgtrans data make TASK`` makes them (centre crop, resize, seed 0).

    python scripts/pair_maker_gallery.py            # writes docs/images/pairs_TASK.png

Needs scikit-image, only for its sample photo (``pip install scikit-image``); imgtrans itself
does not depend on it (Canny comes from OpenCV, already a dependency).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images"
SIDE = 128
#: parameters that show each task at the picture's small size (the defaults suit 256 pixels)
SHOWN = {"edges": {"sigma": 1.5}, "superres": {"scale": 4}}


def main() -> int:
    try:
        from skimage import data
    except ImportError:
        print("this script needs scikit-image: pip install scikit-image", file=sys.stderr)
        return 1
    sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]
    import imgtrans
    from imgtrans.data.make import make_dataset

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        photos.mkdir()
        Image.fromarray(data.chelsea()).save(photos / "chelsea.png")
        for task in imgtrans.list_components("pair_maker"):
            if imgtrans.get_registry().get("pair_maker", task).plugin != "imgtrans":
                continue  # the core's tasks only: plugins document their own
            made = Path(tmp) / task
            make_dataset(task, photos, made, parameters=SHOWN.get(task), size=SIDE, split=(1, 0, 0),
                         workers=1, progress=False)
            target = OUT / f"pairs_{task}.png"
            with Image.open(made / "train" / "chelsea.png") as pair:
                pair.save(target, optimize=True)
            print(f"wrote {target.relative_to(ROOT)} ({target.stat().st_size // 1024} kB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
