"""Dataset formats, direction, and paired augmentation that moves A and B together."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import write_aligned
from PIL import Image

import imgtrans
from imgtrans.data.detect import detect_format
from imgtrans.data.formats import AlignedDataset, PairedFoldersDataset
from imgtrans.data.transforms import PairedTransform
from imgtrans.util.errors import DataError


def test_aligned_pairs_and_direction(aligned_dir: Path) -> None:
    ab = AlignedDataset(aligned_dir, "train")
    ba = AlignedDataset(aligned_dir, "train", direction="BtoA")
    item, swapped = ab[0], ba[0]
    assert item["A"].shape == (3, 64, 64) and -1 <= float(item["A"].min()) and float(item["A"].max()) <= 1
    assert torch.equal(item["A"], swapped["B"]) and torch.equal(item["B"], swapped["A"])
    assert torch.allclose(item["A"], -item["B"], atol=1 / 127.5 + 1e-6)  # B is the inverse of A
    assert len(AlignedDataset(aligned_dir, "test")) == 2
    assert len(AlignedDataset(aligned_dir, "train", max_items=3)) == 3


def test_paired_folders_match_by_name(tmp_path: Path) -> None:
    for side, colour in (("A", (255, 0, 0)), ("B", (0, 0, 255))):
        (tmp_path / "train" / side).mkdir(parents=True)
        for name in ("one", "two"):
            Image.new("RGB", (32, 16), colour).save(tmp_path / "train" / side / f"{name}.png")
    Image.new("RGB", (32, 16)).save(tmp_path / "train" / "A" / "unpaired.png")
    ds = PairedFoldersDataset(tmp_path, "train", out_channels=1)
    assert len(ds) == 2 and ds[0]["A"].shape == (3, 16, 32) and ds[0]["B"].shape == (1, 16, 32)
    assert float(ds[0]["A"][0].mean()) == 1.0 and float(ds[0]["A"][2].mean()) == -1.0


def test_format_detection(aligned_dir: Path, tmp_path: Path) -> None:
    formats = {"aligned": AlignedDataset, "paired_folders": PairedFoldersDataset}
    assert detect_format(aligned_dir, formats) == "aligned"
    (tmp_path / "A").mkdir()
    (tmp_path / "B").mkdir()
    assert detect_format(tmp_path, formats) == "paired_folders"
    with pytest.raises(DataError, match="cannot tell the format"):
        detect_format(tmp_path / "A", formats)
    with pytest.raises(DataError, match="no 'val' split"):
        AlignedDataset(aligned_dir, "val")


def test_one_random_draw_for_a_and_b() -> None:
    """Crop and flip must be identical for A and B: feed the same image twice and compare."""
    rng = np.random.default_rng(0)
    img = (rng.random((300, 300, 3)) * 255).astype(np.uint8)
    transform = PairedTransform(286, 256, flip=True, seed=0)
    seen = set()
    for _ in range(10):
        a, b = transform(img, img.copy())
        assert a.shape == (256, 256, 3) and np.array_equal(a, b)
        seen.add(a.tobytes()[:64])
    assert len(seen) > 1, "crops vary between draws"
    grey, rgb = transform(img[:, :, :1], img)
    assert grey.shape == (256, 256, 1) and rgb.shape == (256, 256, 3)


def test_basemap_is_real_deterministic_and_cached(basemap_root: Path) -> None:
    from imgtrans.core.plugin_host import get_host
    from imgtrans.data.catalog import resolve_dataset

    assert resolve_dataset("basemap", get_host().catalog) == basemap_root  # reused, not rebuilt
    train = AlignedDataset(basemap_root, "train")
    test = AlignedDataset(basemap_root, "test")
    assert 90 <= len(train) <= 130 and 25 <= len(test) <= 45
    with Image.open(train.items[0]) as img:
        assert img.size == (512, 256)


def test_interrupted_build_leaves_no_half_dataset(tmp_path: Path, monkeypatch) -> None:
    from imgtrans.data.catalog import DatasetCatalog, resolve_dataset

    monkeypatch.setenv("IMGTRANS_HOME", str(tmp_path))

    def build(dest: Path, progress=None) -> None:
        write_aligned(dest, "train")
        raise KeyboardInterrupt

    catalog = DatasetCatalog()
    view = catalog.for_plugin("t")
    view.add("flaky", "fails half-way", build=build)
    view.commit()
    with pytest.raises(KeyboardInterrupt):
        resolve_dataset("flaky", catalog)
    assert list((tmp_path / "datasets").iterdir()) == []


def test_dataset_format_is_a_registered_component(aligned_dir: Path) -> None:
    assert imgtrans.list_components("dataset_format") == ["aligned", "paired_folders", "single", "unpaired"]
    ds = imgtrans.create_dataset_format("aligned", root=aligned_dir, split="test")
    assert len(ds) == 2


def test_in_memory_cache_decodes_each_file_once(aligned_dir: Path, monkeypatch) -> None:
    import imgtrans.data.formats as formats

    calls = []
    real = formats.load_image
    monkeypatch.setattr(formats, "load_image", lambda path, channels: calls.append(path) or real(path, channels))
    ds = AlignedDataset(aligned_dir, "train", cache=True, transform=PairedTransform(64, 32, seed=0))
    first = [ds[i]["A"] for i in range(len(ds))]
    second = [ds[i]["A"] for i in range(len(ds))]
    assert len(calls) == 4, "decoded once each"
    assert any(not torch.equal(a, b) for a, b in zip(first, second)), "augmentation still runs every time"
