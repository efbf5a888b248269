"""Scoring images already on disk without a model: ``imgtrans eval --generated DIR --real DIR`` and
``imgtrans.score_folders``, paired by name or scored as sets; eval's progress in a log."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch import nn

import imgtrans
from imgtrans.cli import cli
from imgtrans.util.errors import ConfigError, DataError


def _folder(folder: Path, names: list[str], seed: int, size: int = 24, shift: int = 0) -> Path:
    """Seeded random images named ``names`` (their extension sets the format); ``shift`` brightens them."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for name in names:
        pixels = np.clip(rng.integers(30, 220, (size, size, 3)) + shift, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / name)
    return folder


def _pixels(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB"), dtype=np.float64) / 255 for p in sorted(folder.iterdir())]


def _eval(*args) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["eval", *map(str, args)])
    return result.exit_code, result.output


class _PixelMeans(nn.Module):
    """Stands in for Inception: each channel's mean byte, as a tuple like torch-fidelity's extractor."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        return (x.float().mean((2, 3)),)


@pytest.fixture
def no_inception(monkeypatch, tmp_path: Path) -> None:
    pytest.importorskip("torch_fidelity", reason="FID and KID need the metrics extra (torch-fidelity)")
    from imgtrans.metrics import distribution

    monkeypatch.setattr(distribution, "inception_weights", lambda local=None, **kw: tmp_path / "unused.pth")
    monkeypatch.setattr(distribution, "inception_extractor", lambda path, spec=None: _PixelMeans())


def test_folders_with_matching_names_are_scored_per_image(tmp_path: Path) -> None:
    """Names match by stem (``3.png`` against ``3.bmp``): L1, PSNR and SSIM per pair, as computed directly."""
    names = [f"{i}" for i in range(4)]
    real = _folder(tmp_path / "real", [f"{n}.bmp" for n in names], seed=0)
    generated = _folder(tmp_path / "gen", [f"{n}.png" for n in names], seed=0, shift=9)
    code, output = _eval("--generated", generated, "--real", real, "--json")
    assert code == 0, output
    (row,) = json.loads(output)
    assert row["paired"] is True and row["count"] == 4 and row["pairing"].startswith("paired: 4 names match")
    l1 = np.mean([np.abs(g - r).mean() for g, r in zip(_pixels(generated), _pixels(real))])
    assert row["l1"] == pytest.approx(l1, rel=1e-6) and set(row) >= {"psnr", "ssim", "protocol"}
    library = imgtrans.score_folders(generated, real)
    assert library.figures == {k: row[k] for k in ("l1", "psnr", "ssim", "grid")}
    # every image is scored on its own: the batch changes no figure
    assert imgtrans.score_folders(generated, real, batch_size=1).figures == library.figures
    code, table = _eval("--generated", generated, "--real", real)
    assert code == 0 and "paired: 4 names match one to one" in table and "SSIM: Gaussian window 11" in table


def test_folders_whose_names_differ_get_set_metrics_only_and_say_so(tmp_path: Path, no_inception) -> None:
    real = _folder(tmp_path / "real", [f"photo_{i}.png" for i in range(5)], seed=0)
    generated = _folder(tmp_path / "gen", [f"out_{i}.png" for i in range(3)], seed=1, size=16)
    code, output = _eval("--generated", generated, "--real", real, "--json")
    assert code == 0, output
    (row,) = json.loads(output)
    assert row["paired"] is False and "set metrics only" in row["pairing"] and "'out_0'" in row["pairing"]
    assert (row["count"], row["reference_count"]) == (3, 5) and {"fid", "kid", "kid_std"} <= set(row)
    assert row["kid_std"] > 0 and "notes" not in row  # 3 against 5 images: subsets differ, a real spread
    (fid_line,) = [line for line in row["protocol"] if line.startswith("FID:")]
    assert fid_line.endswith("; 3 generated against 5 reference images")
    code, table = _eval("--generated", generated, "--real", real)
    assert code == 0 and "unpaired: 3 generated and 5 real names have no match" in table
    code, refused = _eval("--generated", generated, "--real", real, "--metric", "ssim")
    assert code != 0 and "(e.g. generated 'out_0'), so ssim would score against unrelated targets" in refused


def test_kid_std_from_one_subset_is_not_printed_as_a_figure(tmp_path: Path, no_inception) -> None:
    real = _folder(tmp_path / "real", [f"{i}.png" for i in range(3)], seed=0)
    generated = _folder(tmp_path / "gen", [f"{i}.png" for i in range(3)], seed=1)
    code, output = _eval("--generated", generated, "--real", real, "--metric", "kid", "--json")
    (row,) = json.loads(output)
    assert row["kid_std"] is None and row["notes"] == {"kid_std": "n/a (one subset: 3 images <= subset size 1000)"}
    code, table = _eval("--generated", generated, "--real", real, "--metric", "kid")
    assert code == 0 and "kid_std n/a (one subset: 3 images <= subset size 1000)" in table


def test_pairing_can_be_forced_and_mismatches_are_one_line(tmp_path: Path, no_inception) -> None:
    real = _folder(tmp_path / "real", ["a.png", "b.png"], seed=0)
    generated = _folder(tmp_path / "gen", ["a.png", "c.png"], seed=1)
    code, output = _eval("--generated", generated, "--real", real, "--paired")
    assert code != 0 and "--paired needs one real image for each generated image, by name" in output
    same = _folder(tmp_path / "same", ["a.png", "b.png"], seed=1)
    as_sets = imgtrans.score_folders(same, real, paired=False)
    assert not as_sets.paired and set(as_sets.figures) == {"fid", "kid", "kid_std"}
    small = _folder(tmp_path / "small", ["a.png", "b.png"], seed=1, size=16)
    with pytest.raises(DataError, match=r"a.png is 16x16 but .*a.png is 24x24: paired metrics compare pixel"):
        imgtrans.score_folders(small, real)
    with pytest.raises(DataError, match="no images in"):
        imgtrans.score_folders(_folder(tmp_path / "empty", [], seed=0), real)


def test_eval_says_which_options_go_together(tmp_path: Path) -> None:
    real = _folder(tmp_path / "real", ["a.png", "b.png"], seed=0)
    code, output = _eval("--generated", real)
    assert code == 2 and "--real is missing" in output
    code, output = _eval("--generated", real, "--real", real, "--baseline", "identity", "--split", "val")
    assert code == 2 and "--split, --baseline only apply to scoring a model" in output
    code, output = _eval("--data", real)
    assert code == 2 and "eval needs --model and --data (score a model on a dataset), or --generated" in output


def test_evaluate_without_a_model_is_one_line() -> None:
    with pytest.raises(ConfigError, match=r"evaluate needs at least one model.*imgtrans.score_folders") as caught:
        imgtrans.evaluate({"identity": None}, "anywhere")
    assert "\n" not in str(caught.value)


def test_progress_in_a_log_is_a_few_whole_lines(tmp_path: Path) -> None:
    """Not a terminal (CliRunner's stderr): whole lines at 25 % steps, none cut with an ellipsis;
    none with --json, whose output stays parseable."""
    real = _folder(tmp_path / "real", [f"{i}.png" for i in range(8)], seed=0)
    generated = _folder(tmp_path / "gen", [f"{i}.png" for i in range(8)], seed=1)
    result = CliRunner().invoke(cli, ["eval", "--generated", str(generated), "--real", str(real)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("eval: ")]
    assert [line.split(" (")[0] for line in lines] == ["eval: 2/8", "eval: 4/8", "eval: 6/8", "eval: 8/8"]
    assert all(line.endswith("/s") and "…" not in line for line in lines)
    quiet = CliRunner().invoke(cli, ["eval", "--generated", str(generated), "--real", str(real), "--json"])
    assert "eval: " not in quiet.stderr and json.loads(quiet.output)[0]["count"] == 8


def test_model_eval_shows_progress_in_a_log(tmp_path: Path) -> None:
    from helpers import tiny_model_file, write_aligned

    data = write_aligned(tmp_path / "pairs", "test", count=4, size=32)
    result = CliRunner().invoke(cli, ["eval", "--model", str(tiny_model_file(tmp_path)), "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert "eval: 4/4 (100%)" in result.stderr
