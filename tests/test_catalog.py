"""The dataset catalogue: every public dataset one name away, fetched safely from a (loopback) mirror."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from imgtrans.cli import cli
from imgtrans.core.checkpoint import read_metadata
from imgtrans.core.plugin_host import get_host
from imgtrans.data.catalog import DatasetCatalog, dataset_path, resolve_dataset
from imgtrans.util.errors import DataError

PAIRED = ["facades", "maps", "edges2shoes", "edges2handbags", "night2day", "cityscapes"]
UNPAIRED = ["horse2zebra", "apple2orange", "summer2winter_yosemite", "monet2photo", "cezanne2photo",
            "ukiyoe2photo", "vangogh2photo", "maps", "cityscapes", "facades", "iphone2dslr_flower"]


def _jpeg(w: int = 16, h: int = 8, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def _tar_gz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_catalogue_has_every_public_dataset() -> None:
    catalog = get_host().catalog
    for name in PAIRED:
        assert catalog.get(name).paired, name
    for name in UNPAIRED:
        entry = catalog.get(f"cyclegan_{name}")
        assert not entry.paired and entry.layout == "unpaired" and entry.url.endswith(f"/{name}.zip")
    facades = catalog.get("facades")
    assert facades.url == "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/facades.tar.gz"
    assert facades.splits == {"train": 400, "val": 100, "test": 106} and facades.domains == ("photo", "label map")
    assert catalog.get("cityscapes").url is None and "redistribut" in catalog.get("cityscapes").licence
    for name in catalog.names():
        assert catalog.get(name).licence, name


@pytest.fixture
def fake_facades(http_server, tmp_path, monkeypatch):
    """The real `facades` entry, served by a loopback mirror holding a miniature archive of the right shape."""
    monkeypatch.setenv("IMGTRANS_HOME", str(tmp_path / "home"))
    files = {}
    for split, count in {"train": 400, "val": 100, "test": 106}.items():
        for i in range(count):
            files[f"facades/{split}/{i + 1}.jpg"] = _jpeg(seed=i)
    http_server.files["/mirror/facades.tar.gz"] = _tar_gz(files)
    monkeypatch.setenv("IMGTRANS_DATA_MIRROR", http_server.url("/mirror"))
    return http_server


def test_train_on_a_public_dataset_by_name(fake_facades, tmp_path) -> None:
    result = CliRunner().invoke(cli, [
        "train", "pix2pix", "--data", "facades", "--direction", "BtoA", "--generator", "unet", "--set", "generator.num_downs=5",
        "--set", "generator.ngf=4", "--set", "discriminator.ndf=4", "--load-size", "32", "--crop-size", "32",
        "--max-steps", "2", "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    root = dataset_path("facades")
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["test", "train", "val"]
    assert len(list((root / "train").iterdir())) == 400
    assert not list((tmp_path / "home" / "downloads").glob("*")), "the archive is removed after extraction"
    requests = len(fake_facades.requests)
    info = CliRunner().invoke(cli, ["data", "info", "facades"])
    assert "format aligned" in info.output and "train" in info.output and "400 images" in info.output
    listed = {d["name"]: d for d in json.loads(CliRunner().invoke(cli, ["data", "list", "--json"]).output)}
    assert listed["facades"]["cached"] and not listed["maps"]["cached"]
    assert len(fake_facades.requests) == requests, "a cached dataset is not fetched again"


def test_an_archive_with_the_wrong_structure_leaves_nothing(http_server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("IMGTRANS_HOME", str(tmp_path / "home"))
    http_server.files["/short.tar.gz"] = _tar_gz({f"short/train/{i}.jpg": _jpeg() for i in range(3)})
    catalog = DatasetCatalog()
    view = catalog.for_plugin("test")
    view.add("short", "too few images", url=http_server.url("/short.tar.gz"), splits={"train": 5, "val": 2})
    view.commit()
    with pytest.raises(DataError) as err:
        resolve_dataset("short", catalog)
    assert "train: 3 images, expected 5" in str(err.value) and "val" in str(err.value)
    assert not dataset_path("short").exists()
    assert [p.name for p in (tmp_path / "home" / "datasets").iterdir()] == []


def test_offline_dataset_error_is_one_line(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("IMGTRANS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("IMGTRANS_OFFLINE", "1")
    result = CliRunner().invoke(cli, ["data", "download", "maps"])
    assert result.exit_code == 2 and "maps.tar.gz" in result.output and "IMGTRANS_OFFLINE" in result.output
    assert len(result.output.strip().splitlines()) == 2  # the progress line, then the error


def test_cityscapes_is_prepared_from_the_users_files(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("IMGTRANS_HOME", str(tmp_path / "home"))
    src = tmp_path / "cityscapes"
    for split, n in (("train", 3), ("val", 2)):
        for i in range(n):
            photo = src / "leftImg8bit" / split / "aachen" / f"aachen_{i:06d}_000019_leftImg8bit.png"
            label = src / "gtFine" / split / "aachen" / f"aachen_{i:06d}_000019_gtFine_color.png"
            for path, colour in ((photo, (90, 90, 90)), (label, (128, 64, 128))):
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (64, 32), colour).save(path)
    needs = CliRunner().invoke(cli, ["train", "pix2pix", "--data", "cityscapes"])
    assert needs.exit_code == 2 and "imgtrans data prepare cityscapes --from DIR" in needs.output
    result = CliRunner().invoke(cli, ["data", "prepare", "cityscapes", "--from", str(src)])
    assert result.exit_code == 0, result.output
    pairs = sorted((dataset_path("cityscapes") / "train").iterdir())
    assert len(pairs) == 3 and Image.open(pairs[0]).size == (512, 256)
    right = np.asarray(Image.open(pairs[0]))[:, 256:]
    assert (right == [128, 64, 128]).all(), "labels are resized with nearest neighbour: colours stay exact"
    bad = CliRunner().invoke(cli, ["data", "prepare", "cityscapes", "--from", str(tmp_path)])
    assert bad.exit_code == 2 and "leftImg8bit" in bad.output


def test_data_info_on_folders(aligned_dir: Path, tmp_path: Path) -> None:
    out = CliRunner().invoke(cli, ["data", "info", str(aligned_dir)]).output
    assert "format aligned" in out and "train" in out and "4 images" in out and "128x64 (4)" in out
    for side in "AB":
        (tmp_path / "pf" / side).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (20, 10)).save(tmp_path / "pf" / side / f"{i}.png")
    out = CliRunner().invoke(cli, ["data", "info", str(tmp_path / "pf")]).output
    assert "format paired_folders" in out and "3 images" in out
    missing = CliRunner().invoke(cli, ["data", "info", "no_such_thing"])
    assert missing.exit_code == 2 and "neither a folder nor a known dataset" in missing.output



def test_interrupted_dataset_download_resumes(fake_facades, tmp_path) -> None:
    from imgtrans.util.download import DownloadError

    fake_facades.cut_after = 20_000
    with pytest.raises(DownloadError, match="kept"):
        resolve_dataset("facades", get_host().catalog)
    assert not dataset_path("facades").exists()
    path = resolve_dataset("facades", get_host().catalog)
    assert fake_facades.requests[-1][1].get("Range") == "bytes=20000-"
    assert len(list((path / "test").iterdir())) == 106


def test_data_info_on_unpaired_and_single_folders(tmp_path: Path) -> None:
    for folder, count in (("trainA", 3), ("trainB", 2), ("testA", 1), ("testB", 1)):
        (tmp_path / "un" / folder).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (24, 12)).save(tmp_path / "un" / folder / f"{i}.png")
    out = CliRunner().invoke(cli, ["data", "info", str(tmp_path / "un")]).output
    assert "format unpaired" in out
    assert "trainA         3 images" in out and "trainB         2 images" in out and "24x12" in out
    (tmp_path / "flat").mkdir()
    for i in range(5):
        Image.new("RGB", (10, 10)).save(tmp_path / "flat" / f"{i}.png")
    # a flat folder of images is read as aligned pairs by default (A|B halves): the first registered match
    out = CliRunner().invoke(cli, ["data", "info", str(tmp_path / "flat")]).output
    assert ".              5 images" in out and "10x10 (5)" in out


@pytest.fixture
def fake_horse2zebra(http_server, tmp_path, monkeypatch):
    """The real CycleGAN `horse2zebra` entry, served by a loopback mirror: a zip of the right shape."""
    import zipfile

    monkeypatch.setenv("IMGTRANS_HOME", str(tmp_path / "home"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for folder, count in {"trainA": 939, "trainB": 1177, "testA": 3, "testB": 3}.items():
            for i in range(count):
                zf.writestr(f"horse2zebra/{folder}/{i}.jpg", _jpeg(32, 32, seed=i % 7))
    http_server.files["/mirror/horse2zebra.zip"] = buf.getvalue()
    monkeypatch.setenv("IMGTRANS_DATA_MIRROR", http_server.url("/mirror"))
    return http_server


def test_train_cyclegan_on_horse2zebra_by_its_plain_name(fake_horse2zebra, tmp_path) -> None:
    """`imgtrans train cyclegan --data horse2zebra`: the catalogue's CycleGAN set, downloaded from the
    (loopback) mirror, verified, extracted once and trained on."""
    catalog = get_host().catalog
    assert catalog.get("horse2zebra") is catalog.get("cyclegan_horse2zebra")
    assert catalog.get("maps").paired  # a name both servers use stays the pix2pix set
    result = CliRunner().invoke(cli, [
        "train", "cyclegan", "--data", "horse2zebra", "--set", "generator_a.ngf=4", "--set", "generator_b.ngf=4",
        "--set", "discriminator_a.ndf=4", "--set", "discriminator_b.ndf=4", "--load-size", "32",
        "--crop-size", "32", "--max-steps", "2", "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    root = dataset_path("cyclegan_horse2zebra")
    assert len(list((root / "trainB").iterdir())) == 1177
    meta = read_metadata(tmp_path / "run" / "model.safetensors")
    assert set(meta["directions"]) == {"AtoB", "BtoA"}
