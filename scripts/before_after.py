"""Before-and-after pictures for docs/images: two models side by side on basemap's test tiles.

    python scripts/before_after.py --before before=OLD.safetensors --after after=runs/demo \\
        --out docs/images/demo_before_after.png

Runs ``imgtrans.evaluate`` on the held-out tiles with both models (their figures are printed, the
grid ratio included) and keeps the first ``--rows`` rows of its labelled contact sheet (input |
before | after | target), scaled by ``--scale`` so the page stays light.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from PIL import Image

import imgtrans
from imgtrans.inference.model import split_spec
from imgtrans.metrics.contact_sheet import HEADER_HEIGHT
from imgtrans.metrics.evaluate import evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, metavar="NAME=MODEL")
    parser.add_argument("--after", required=True, metavar="NAME=MODEL")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--data", default="basemap")
    parser.add_argument("--rows", type=int, default=5)
    parser.add_argument("--scale", type=float, default=0.75)
    args = parser.parse_args()
    models = {name: imgtrans.load_model(source) for name, source in map(split_spec, (args.before, args.after))}
    with tempfile.TemporaryDirectory() as tmp:
        sheet = Path(tmp) / "sheet.png"
        results = evaluate(models, args.data, "test", contact_sheet=sheet, sheet_rows=args.rows,
                           sheet_models=list(models))
        with Image.open(sheet) as image:
            size = (round(image.width * args.scale), round(image.height * args.scale))
            image.resize(size, Image.LANCZOS).save(args.out, optimize=True)
    for r in results:
        print(f"{r.name:<16} L1 {r.l1:.4f}  PSNR {r.psnr:.2f} dB  SSIM {r.ssim:.4f}  grid {r.grid:.2f}")
    print(f"{args.out}: input | {' | '.join(models)} | target, {args.rows} rows (header {HEADER_HEIGHT} px, "
          f"scaled {args.scale:g})")


if __name__ == "__main__":
    main()
