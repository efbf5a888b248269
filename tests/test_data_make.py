"""``imgtrans data make``: every pair maker makes a dataset that pix2pix trains on; the output is
reproducible and independent of order and threads; OUT is never half-written or wrongly replaced."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import imgtrans
from imgtrans.cli import cli
from imgtrans.core.config import resolve
from imgtrans.core.interfaces import PairMaker
from imgtrans.core.registry import Component, Registry
from imgtrans.data.make import MARKER, assign_splits, make_dataset
from imgtrans.util.errors import ConfigError

SIDE = 32


def _photos(folder: Path, count: int = 5, seed: int = 0) -> Path:
    """Non-square photos with structure (blocks and a gradient) in a nested folder."""
    rng = np.random.default_rng(seed)
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        cells = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
        pixels = np.kron(cells, np.ones((8, 8, 1), dtype=np.uint8))  # 40 x 48
        where = folder / "sub" if i == 0 else folder
        Image.fromarray(pixels).save(where / f"photo_{i}.png")
    return folder


def _run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _pairs(out: Path) -> dict[str, bytes]:
    """Every pair's decoded pixels by file name, whatever split holds it."""
    return {p.name: np.asarray(Image.open(p)).tobytes() for p in sorted(out.glob("*/*.png"))}


@pytest.mark.parametrize("task", imgtrans.list_components("pair_maker"))
def test_every_pair_maker_makes_a_dataset_that_pix2pix_trains_on(task: str, registry, tmp_path: Path) -> None:
    out = tmp_path / "made"
    result = _run("data", "make", task, _photos(tmp_path / "photos"), out, "--size", SIDE, "--split", "0.6,0.2,0.2")
    assert result.exit_code == 0, result.output
    info = json.loads(_run("data", "info", out, "--json").output)
    assert info["format"] == "aligned"
    assert {s["name"]: s["count"] for s in info["splits"]} == {"train": 3, "val": 1, "test": 1}
    tiny = imgtrans.get_registry().get("recipe", "pix2pix").factory.tiny_config
    config = resolve("pix2pix", registry, [tiny, {"data": {"source": str(out)}, "optim": {"max_steps": 2},
                                                  "run": {"out": str(tmp_path / "run"), "progress": False}}])
    assert imgtrans.train(config).steps == 2


def test_same_seed_same_pixels_whatever_the_threads_and_other_photos(tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos", count=6)
    make_dataset("denoise", photos, tmp_path / "a", size=SIDE, seed=3, workers=1, progress=False)
    make_dataset("denoise", photos, tmp_path / "b", size=SIDE, seed=3, workers=3, progress=False)
    assert _pairs(tmp_path / "a") == _pairs(tmp_path / "b")
    assert sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png")) == \
        sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.png"))
    make_dataset("denoise", photos, tmp_path / "c", size=SIDE, seed=4, workers=1, progress=False)
    assert _pairs(tmp_path / "c") != _pairs(tmp_path / "a")  # the seed decides the noise
    Image.new("RGB", (40, 40), "red").save(photos / "another.png")  # a new photo changes no other pair
    make_dataset("denoise", photos, tmp_path / "d", size=SIDE, seed=3, workers=1, progress=False)
    more = _pairs(tmp_path / "d")
    assert {k: more[k] for k in _pairs(tmp_path / "a")} == _pairs(tmp_path / "a")


def test_splits_are_exact_counts_ranked_by_hash_not_by_order() -> None:
    names = [f"img{i}.jpg" for i in range(20)]
    splits = assign_splits(names, (0.7, 0.15, 0.15), seed=0)
    assert assign_splits(list(reversed(names)), (0.7, 0.15, 0.15), seed=0) == splits
    assert [list(splits.values()).count(s) for s in ("train", "val", "test")] == [14, 3, 3]
    assert assign_splits(names, (0.7, 0.15, 0.15), seed=1) != splits
    assert set(assign_splits(["a", "b"], (0.8, 0.1, 0.1), seed=0).values()) == {"train"}  # too few to hold out


def test_unreadable_photos_are_skipped_and_counted(tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos", count=3)
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    warnings: list[str] = []
    report = make_dataset("colorize", photos, tmp_path / "out", size=SIDE, split=(1, 0, 0), progress=False,
                          warn=warnings.append)
    assert report.counts == {"train": 3} and len(report.skipped) == 1 and "broken.jpg" in warnings[0]
    record = json.loads((tmp_path / "out" / MARKER).read_text())
    assert record["skipped"] == 1 and record["counts"] == {"train": 3, "val": 0, "test": 0}
    assert not (tmp_path / "out" / "val").exists()  # empty splits are not written


def test_an_existing_folder_is_replaced_only_with_overwrite_and_only_if_made(tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos", count=3)
    out = tmp_path / "out"
    out.mkdir()  # an empty folder is fine
    make_dataset("jpeg", photos, out, size=SIDE, progress=False)
    result = _run("data", "make", "jpeg", photos, out)
    assert result.exit_code == 2 and "--overwrite" in result.output
    made = _run("data", "make", "blur", photos, out, "--overwrite", "--size", SIDE)
    assert made.exit_code == 0, made.output
    assert json.loads((out / MARKER).read_text())["task"] == "blur"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    refused = _run("data", "make", "blur", photos, mine, "--overwrite")
    assert refused.exit_code == 2 and "refusing to --overwrite" in refused.output
    assert (mine / "notes.txt").read_text() == "keep me"
    inside = _run("data", "make", "blur", photos, photos / "made")
    assert inside.exit_code == 2 and "overlap" in inside.output


class _Interrupted(PairMaker):
    """Stops the run on the third photo, as a Ctrl-C would."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, photo, rng):
        self.calls += 1
        if self.calls == 3:
            raise KeyboardInterrupt
        return photo


def test_an_interrupted_run_leaves_no_dataset_and_keeps_the_old_one(tmp_path: Path) -> None:
    registry = Registry()
    registry.add(Component("pair_maker", "stops", _Interrupted, "test"))
    photos = _photos(tmp_path / "photos", count=5)
    with pytest.raises(KeyboardInterrupt):
        make_dataset("stops", photos, tmp_path / "new", size=SIDE, workers=1, registry=registry, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]  # no OUT, no partial folder
    make_dataset("colorize", photos, tmp_path / "old", size=SIDE, progress=False)
    before = _pairs(tmp_path / "old")
    with pytest.raises(KeyboardInterrupt):
        make_dataset("stops", photos, tmp_path / "old", size=SIDE, workers=1, overwrite=True, registry=registry,
                     progress=False)
    assert _pairs(tmp_path / "old") == before


@pytest.mark.parametrize("args,message", [
    (("edgs",), "unknown pair maker 'edgs'. Did you mean 'edges'?"),
    (("edges", "--set", "edges.sigm=2"), "Did you mean 'sigma'?"),
    (("edges", "--set", "edges.sigma=-1"), "edges.sigma must be a number >= 0, got -1"),
    (("edges", "--set", "edges.low=0.95"), "edges.low (0.95) must not exceed edges.high (0.85)"),
    (("edges", "--set", "blur.sigma=2"), "--set blur.NAME does not apply: the task is 'edges'"),
    (("inpaint", "--set", "inpaint.fill=red"), "inpaint.fill must be one of grey, black, white, noise"),
    (("jpeg", "--split", "0.5,0.6,0"), "--split must be three fractions"),
    (("edges", "--size", "100000"), "--size 100000 is too large: at most 8192"),  # was a MemoryError traceback
])
def test_bad_tasks_and_parameters_are_one_line_errors(args, message: str, tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos", count=1)
    task, *options = args
    result = _run("data", "make", task, photos, tmp_path / "out", *options)
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_parameters_reach_the_maker(tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos", count=1)
    report = make_dataset("superres", photos, tmp_path / "out", parameters={"scale": 8}, size=SIDE, progress=False)
    assert report.parameters == {"scale": 8, "resample": "bicubic"}
    pair = np.asarray(Image.open(next((tmp_path / "out").glob("*/*.png"))))
    a = pair[:, :SIDE].astype(int)
    assert np.abs(np.diff(a, axis=1)).max() < np.abs(np.diff(pair[:, SIDE:].astype(int), axis=1)).max()
    with pytest.raises(ConfigError):
        make_dataset("superres", photos, tmp_path / "x", parameters={"scale": 1}, size=SIDE, progress=False)


def test_the_current_folder_can_be_out_when_empty(tmp_path: Path, monkeypatch) -> None:
    photos = _photos(tmp_path / "photos", count=2)
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    report = imgtrans.make_dataset("edges", photos, ".", size=SIDE, progress=False)
    assert report.counts == {"train": 2} and (tmp_path / "here" / MARKER).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here", "photos"]  # nothing left beside it


def test_a_second_run_on_the_same_out_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    """The second run deleted the first one's in-progress folder; now it is refused in one line and
    the first run finishes whole."""
    import fcntl

    photos = _photos(tmp_path / "photos", count=2)
    out = tmp_path / "out"
    lock = tmp_path / "out.lock"  # what a running `data make` holds (imgtrans.util.cachelock)
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = _run("data", "make", "edges", photos, out, "--size", SIDE)
        assert result.exit_code == 2 and "is in use by imgtrans data make" in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1 and not out.exists()
    assert _run("data", "make", "edges", photos, out, "--size", SIDE).exit_code == 0 and (out / MARKER).is_file()
    assert not lock.exists()
