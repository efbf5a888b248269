"""Dataset formats are chosen explicitly and deterministically: --format, a named dataset's layout,
else the most specific format that recognises the folder; unpaired data never trains pix2pix."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import imgtrans
from imgtrans.cli import cli
from imgtrans.core.checkpoint import save_checkpoint
from imgtrans.core.interfaces import PairedDataset
from imgtrans.core.registry import Component, Registry
from imgtrans.data.catalog import DatasetCatalog, DatasetEntry, dataset_path
from imgtrans.data.detect import select_format
from imgtrans.data.formats import PairedFoldersDataset
from imgtrans.util.errors import DataError


def _images(folder: Path, w: int, h: int, count: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(folder / f"{i:02d}.png")
    return folder


class AboveBelow(PairedDataset):
    """A plugin's format: A above B, so images are twice as high as wide."""

    specificity = 25

    @staticmethod
    def detect(root: Path) -> bool:
        return (root / "train").is_dir()

    def __len__(self) -> int:
        return 0

    def __getitem__(self, index: int) -> dict:
        raise IndexError(index)


def _registry(*plugin_formats: tuple[str, type]) -> Registry:
    fresh = Registry()
    for component in imgtrans.get_registry().components("dataset_format"):
        fresh.add(component)
    for name, factory in plugin_formats:
        fresh.add(Component("dataset_format", name, factory, "myplugin"))
    return fresh


def test_the_most_specific_format_wins_whatever_its_name(tmp_path: Path) -> None:
    above = _images(tmp_path / "above" / "train", 32, 64).parent
    side_by_side = _images(tmp_path / "side" / "train", 64, 32).parent
    registry = _registry(("above_below", AboveBelow))
    assert select_format(above, registry) == "above_below"  # "aligned" sorts first and used to claim it
    assert select_format(side_by_side, registry) == "above_below"  # both match: 25 beats aligned's 20
    tie = type("Tie", (AboveBelow,), {"specificity": 20})
    with pytest.raises(DataError, match=r"several dataset formats equally \(aligned, b_tie, specificity 20\); "
                                        r"choose one with --format NAME"):
        select_format(side_by_side, _registry(("b_tie", tie)))
    assert select_format(side_by_side, _registry(("b_tie", tie)), requested="aligned") == "aligned"


def test_a_flat_folder_of_ordinary_images_is_not_side_by_side_pairs(tmp_path: Path) -> None:
    registry = imgtrans.get_registry()
    assert select_format(_images(tmp_path / "photos", 64, 64), registry) == "single"
    assert select_format(_images(tmp_path / "pairs", 128, 64), registry) == "aligned"



@pytest.mark.parametrize("recipe", ["pix2pix", "cyclegan"])
def test_training_on_a_folder_of_photos_points_at_data_make(recipe: str, tmp_path: Path) -> None:
    """A folder of plain photos is not training data for any recipe (CycleGAN stopped with a
    KeyError): one line saying so, with the command that builds pairs from it."""
    photos = _images(tmp_path / "photos", 64, 64)
    result = CliRunner().invoke(cli, ["train", recipe, "--data", str(photos), "--max-steps", "1",
                                      "--out", str(tmp_path / "run"), "--quiet"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert f"error: {photos} is a folder of single images, not pairs" in lines[0]
    assert f"`imgtrans data make TASK {photos} OUT`" in lines[0] and "--format aligned" in lines[0]
    assert ("trainA/ and trainB/" in lines[0]) == (recipe == "cyclegan")


def test_pix2pix_refuses_unpaired_data(tmp_path: Path) -> None:
    for folder in ("trainA", "trainB"):
        _images(tmp_path / "cyc" / folder, 32, 32)
    result = CliRunner().invoke(cli, ["train", "pix2pix", "--data", str(tmp_path / "cyc"), "--max-steps", "1",
                                      "--out", str(tmp_path / "run"), "--quiet"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "recipe 'pix2pix' learns from aligned pairs" in lines[0] and "'unpaired' format" in lines[0]


def test_a_named_datasets_layout_decides(tmp_path: Path) -> None:
    catalog = DatasetCatalog()
    catalog.add(DatasetEntry("h4_flat", "test", layout="single", plugin="myplugin"))
    catalog.add(DatasetEntry("h4_bogus", "test", layout="a_above_b", plugin="myplugin"))
    registry = imgtrans.get_registry()
    for name in ("h4_flat", "h4_bogus"):
        _images(dataset_path(name) / "train", 64, 32)  # detection alone would say aligned
    assert select_format(dataset_path("h4_flat"), registry, catalog) == "single"
    with pytest.raises(DataError, match="dataset 'h4_bogus' \\(plugin 'myplugin'\\) declares layout 'a_above_b'"):
        select_format(dataset_path("h4_bogus"), registry, catalog)


def test_format_option_on_data_info_and_eval(tmp_path: Path) -> None:
    data = _images(tmp_path / "wide" / "test", 96, 32).parent  # pairs of two 48x32 halves: not detected
    info = CliRunner().invoke(cli, ["data", "info", str(data)])
    assert info.exit_code == 2 and "cannot tell the format" in info.output and "--format" in info.output
    info = CliRunner().invoke(cli, ["data", "info", str(data), "--format", "aligned"])
    assert info.exit_code == 0 and "format aligned" in info.output, info.output
    assert "unknown dataset format 'algined'" in CliRunner().invoke(cli, ["data", "info", str(data), "--format",
                                                                         "algined"]).output

    gen = imgtrans.create_generator("unet", num_downs=5, ngf=4)
    model = save_checkpoint(tmp_path / "m.safetensors", {"generator": gen},
                            {"generator": {"name": "unet", "num_downs": 5, "ngf": 4}, "in_channels": 3,
                             "out_channels": 3, "stride": 32, "norm_stats": "running"})
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["eval", "--model", str(model), "--data", str(data), "--format", "aligned",
                                      "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert [Image.open(p).size for p in sorted(out.glob("*.png"))] == [(48, 32), (48, 32)]
    # a flat folder of ordinary images is not scored as half-image pairs (it wrote 32x64 outputs for 64x64 inputs)
    photos = _images(tmp_path / "photos", 64, 64)
    result = CliRunner().invoke(cli, ["eval", "--model", str(model), "--data", str(photos)])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "'single' data with no target" in lines[0], \
        result.output


def test_unmatched_paired_names_are_counted_and_named(tmp_path: Path, capsys) -> None:
    _images(tmp_path / "A", 32, 32, count=3)
    _images(tmp_path / "B", 32, 32, count=1)
    for name in ("x1", "x2", "x3", "x4", "x5", "x6"):
        Image.new("RGB", (32, 32)).save(tmp_path / "B" / f"{name}.png")
    assert len(PairedFoldersDataset(tmp_path)) == 1
    warning = capsys.readouterr().err.strip()
    assert warning == (f"imgtrans: warning: {tmp_path}: 8 image(s) with no partner of the same name are skipped "
                       "(A/ only: 01, 02; B/ only: x1, x2, x3, x4, x5, ... (6 in all)); 1 pairs used")
    for path in (tmp_path / "A").iterdir():
        path.rename(path.with_name("a" + path.name))
    with pytest.raises(DataError, match=r"no file names in common between A/ \(3 images\) and B/ \(7 images\)"):
        PairedFoldersDataset(tmp_path)
    Image.new("RGB", (32, 32)).save(tmp_path / "B" / "x1.jpg")
    with pytest.raises(DataError, match="x1.jpg and x1.png have the same name"):
        PairedFoldersDataset(tmp_path)
