"""The grid-artefact metric sees a lattice that L1 hardly registers, and nothing else."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image
from helpers import tiny_model_file

from imgtrans.cli import cli
from imgtrans.core.plugin_host import get_host
from imgtrans.data.images import quantise
from imgtrans.metrics import l1
from imgtrans.metrics.grid import GridArtefacts, grid_ratio, lattice_bins


def checkerboard(size: int = 256, period: int = 2) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return (((yy // (period // 2) + xx // (period // 2)) % 2).float() * 2 - 1).expand(1, 3, size, size)


def relief_tile(basemap_root, size: int = 256) -> torch.Tensor:
    """A real shaded-relief target (the B half of a basemap test pair) in [-1, 1]."""
    tile = sorted((basemap_root / "test").iterdir())[4]
    with Image.open(tile) as pair:
        pixels = np.asarray(pair.convert("RGB"))[:size, -size:]
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1


def levels(n: float) -> float:
    """``n`` 8-bit levels in the [-1, 1] scale."""
    return 2 * n / 255


def test_lattice_bins_are_the_period_2_and_4_frequencies() -> None:
    assert lattice_bins(256) == [0, 64, 128, 192]
    assert lattice_bins(8) == [0, 2, 4, 6]


def test_a_faint_checkerboard_scores_high_where_l1_barely_moves() -> None:
    flat = quantise(torch.full((1, 3, 256, 256), 0.2))
    assert grid_ratio(flat, flat).item() == pytest.approx(1.0)
    lattice = quantise(flat + levels(2) * checkerboard())
    assert l1(lattice, flat).item() < 0.01                    # under 1 % of the range...
    assert grid_ratio(lattice, flat).item() > 20              # ...but a visible pattern
    period4 = quantise(flat + levels(2) * checkerboard(period=4))
    assert grid_ratio(period4, flat).item() > 20


def test_a_clean_translation_of_a_real_target_scores_about_one(basemap_root) -> None:
    target = relief_tile(basemap_root)
    assert grid_ratio(target, target).item() == pytest.approx(1.0)
    blurred = quantise(F.avg_pool2d(F.pad(target, (1, 1, 1, 1), mode="reflect"), 3, stride=1))
    shifted = torch.roll(target, shifts=(3, 5), dims=(-2, -1))
    assert grid_ratio(blurred, target).item() < 1.2           # blur removes detail, adds no lattice
    assert 0.8 < grid_ratio(shifted, target).item() < 1.2     # the same content elsewhere
    assert grid_ratio(quantise(target + levels(3) * checkerboard()), target).item() > 1.2


def test_per_image_scores_and_the_registered_component() -> None:
    flat = quantise(torch.full((2, 3, 64, 64), -0.3))
    outputs = flat.clone()
    outputs[1] = quantise(flat[1] + levels(4) * checkerboard(64)[0])
    scores = GridArtefacts().score(outputs, flat)
    assert scores.shape == (2,) and scores[0].item() == pytest.approx(1.0) and scores[1].item() > 20
    metric = get_host().registry.create("metric", "grid")
    assert isinstance(metric, GridArtefacts) and metric.better == "lower"


def test_eval_reports_the_grid_ratio_by_default(tmp_path, aligned_dir) -> None:
    model = tiny_model_file(tmp_path)
    result = CliRunner().invoke(cli, ["eval", "--model", str(model), "--data", str(aligned_dir), "--split", "test",
                                      "--json"])
    assert result.exit_code == 0, result.output
    [scores], _ = json.JSONDecoder().raw_decode(result.output[result.output.index("["):])
    assert scores["grid"] > 0 and {"l1", "psnr", "ssim"} <= set(scores)
