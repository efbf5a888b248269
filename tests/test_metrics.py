"""Metrics as registered components, the one scoring loop, and FID / KID checked against an
independent computation on the same features (a small injected feature network, no Inception)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers import tiny_model_file, write_aligned, write_unpaired
from torch import nn

import imgtrans
from imgtrans.cli import cli
from imgtrans.metrics.scoring import Batch, score
from imgtrans.util.errors import DataError

pytest.importorskip("torch_fidelity", reason="FID and KID need the metrics extra (torch-fidelity)")
from imgtrans.metrics.distribution import FID, KID  # noqa: E402


class ChannelStats(nn.Module):
    """Features: each channel's mean and mean square, 6 numbers an image (a shift moves the means only)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean((2, 3)), (x * x).mean((2, 3))], 1)


class ChannelMeans(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))


def _grid_images(n: int, seed: int = 0, side: int = 8) -> torch.Tensor:
    """Images on the 8-bit grid within [-0.5, 0.5], so a shift of a few levels never clips."""
    g = torch.Generator().manual_seed(seed)
    levels = torch.randint(64, 192, (n, 3, side, side), generator=g).float()
    return levels / 127.5 - 1


def _batches(images: torch.Tensor, size: int = 4):
    for i in range(0, len(images), size):
        chunk = images[i:i + size]
        indices = list(range(i, i + len(chunk)))
        yield Batch(chunk, chunk.clone(), [f"{j}.png" for j in indices], indices)


def _fid_direct(x: np.ndarray, y: np.ndarray) -> float:
    from scipy import linalg

    mx, my = x.mean(0), y.mean(0)
    sx, sy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = linalg.sqrtm(sx @ sy).real
    return float(((mx - my) ** 2).sum() + np.trace(sx + sy - 2 * covmean))


def _kid_direct(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, written out from its definition."""
    d, m, n = x.shape[1], len(x), len(y)
    k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def test_builtin_metrics_are_registered_components(registry) -> None:
    assert {"l1", "psnr", "ssim", "fid", "kid"} <= set(registry.names("metric"))
    assert all(registry.get("metric", n).plugin == "imgtrans" for n in ("l1", "fid"))
    listed = CliRunner().invoke(cli, ["list", "metric", "--json"])
    assert listed.exit_code == 0 and {r["name"] for r in json.loads(listed.output)} >= {"fid", "kid", "ssim"}
    info = CliRunner().invoke(cli, ["info", "metric", "fid", "--json"])
    data = json.loads(info.output)
    assert data["shape"] == "set" and data["better"] == "lower" and "weights" in {a["name"] for a in data["arguments"]}
    assert imgtrans.describe("metrics", "psnr")["shape"] == "paired"


def test_identical_sets_give_zero_and_a_shift_the_analytic_fid() -> None:
    images = _grid_images(16)
    fid = FID(extractor=ChannelMeans())
    shift = 6 / 127.5  # six 8-bit levels
    results = score(_batches(images), {"same": lambda a: a, "shifted": lambda a: a + shift}, {"fid": fid})
    assert abs(results["same"].figures["fid"]) < 1e-9
    # equal covariances, means apart by `shift` in each of 3 channels: FID = |mu1 - mu2|^2 = 3 shift^2
    assert results["shifted"].figures["fid"] == pytest.approx(3 * shift ** 2, rel=1e-6)
    assert results["shifted"].count == 16 and results["shifted"].reference_count == 16


def test_fid_and_kid_match_a_direct_computation_on_the_same_features() -> None:
    images = _grid_images(24, seed=1)
    net = ChannelStats()
    fid, kid = FID(extractor=net), KID(extractor=net, subsets=3)
    assert fid.feature_key == kid.feature_key  # one extraction serves both

    def darker(a: torch.Tensor) -> torch.Tensor:
        return a * 0.7 - 0.1

    scores = score(_batches(images), {"model": darker}, {"fid": fid, "kid": kid})["model"]
    figures = scores.figures
    quantised = imgtrans.metrics.quantise
    x, y = (net(quantised(t)).double().numpy() for t in (darker(images), images))
    assert figures["fid"] == pytest.approx(_fid_direct(x, y), rel=1e-6)
    # subsets of the whole set: every subset is the set, so the mean is the direct figure and the
    # spread is 0 by construction: not reported as a figure, but said
    assert figures["kid"] == pytest.approx(_kid_direct(x, y), rel=1e-9)
    assert figures["kid_std"] is None
    assert scores.notes == {"kid_std": "n/a (one subset: 24 images <= subset size 1000)"}


def test_kid_std_is_reported_when_subsets_differ() -> None:
    """Sets larger than the subset size, or of different sizes, draw different subsets: a real spread."""
    net = ChannelStats()
    for kid, n_out in ((KID(extractor=net, subsets=5, subset_size=6), 12), (KID(extractor=net, subsets=5), 9)):
        images = _grid_images(12, seed=2)
        batches = [Batch(images[:n_out], None, [f"{i}" for i in range(n_out)], list(range(n_out)))]
        scores = score(batches, {"m": lambda a: a * 0.8}, {"kid": kid}, references=[images])["m"]
        assert scores.figures["kid_std"] > 0 and scores.notes == {}


def test_kid_is_unbiased_where_the_plain_mmd_is_not() -> None:
    """Two samples of one distribution: KID averages to 0 over many draws; the biased estimate (all
    kernel terms, diagonals included) stays clearly above it."""
    rng = np.random.default_rng(0)
    kid = KID(subsets=1, subset_size=20)
    unbiased, biased = [], []
    for _ in range(150):
        x, y = rng.normal(size=(20, 4)), rng.normal(size=(20, 4))
        unbiased.append(kid.compute(torch.from_numpy(x), torch.from_numpy(y))["kid"])
        k = lambda a, b: (a @ b.T / 4 + 1) ** 3  # noqa: E731
        biased.append(float(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()))
    se = np.std(unbiased) / np.sqrt(len(unbiased))
    assert abs(np.mean(unbiased)) < 3 * se
    assert np.mean(biased) > 10 * se


def test_set_metrics_need_two_images_a_side() -> None:
    with pytest.raises(DataError, match="fid needs at least 2 images on each side, got 1 outputs"):
        score(_batches(_grid_images(1)), {"m": lambda a: a}, {"fid": FID(extractor=ChannelMeans())})




def test_unpaired_split_is_scored_by_set_metrics_of_outputs_against_the_other_domain(tmp_path: Path) -> None:
    data = write_unpaired(tmp_path / "u", count=5, count_b=3)  # train split: unrelated A and B
    model = imgtrans.load_model(str(tiny_model_file(tmp_path)))
    net = ChannelStats()
    results = imgtrans.evaluate({"model": model, "identity": None}, data, "train", metrics=[FID(extractor=net)])
    identity = results[1]
    assert (identity.count, identity.reference_count) == (5, 3)
    from imgtrans.data.unpaired import UnpairedFolders

    u = UnpairedFolders(data, "train")
    a = torch.stack([u[i]["A"] for i in range(5)])
    b = torch.stack([UnpairedFolders(data, "train", serial=True)[i]["B"] for i in range(3)])
    expected = _fid_direct(net(a).double().numpy(), net(b).double().numpy())
    assert identity.figures["fid"] == pytest.approx(expected, rel=1e-6)
    with pytest.raises(DataError, match="is unpaired.*ssim would score against unrelated targets"):
        imgtrans.evaluate({"model": model}, data, "train", metrics=["ssim"])


def test_eval_metric_subset_json_and_report(tmp_path: Path) -> None:
    data = write_aligned(tmp_path / "pairs", "test", count=3, size=32)
    model = tiny_model_file(tmp_path)
    result = CliRunner().invoke(cli, ["eval", "--model", str(model), "--data", str(data), "--metric", "ssim",
                                      "--metric", "l1", "--json", "--report", str(tmp_path / "rep")])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    assert set(row) == {"name", "count", "direction", "precision", "ssim", "l1", "protocol"} and row["count"] == 3
    page = (tmp_path / "rep" / "index.html").read_text()
    assert page.count("<svg") == 2 and "Best 3 by ssim" in page and "Worst 3 by ssim" in page
    assert (tmp_path / "rep" / "worst_1.png").is_file()
    table = CliRunner().invoke(cli, ["eval", "--model", str(model), "--data", str(data), "--metric", "psnr"])
    assert "PSNR: 10 log10(1 / MSE)" in table.output  # the protocol is stated with the figures
    unknown = CliRunner().invoke(cli, ["eval", "--model", str(model), "--data", str(data), "--metric", "fdi"])
    assert unknown.exit_code == 2 and "unknown metric 'fdi'. Did you mean 'fid'?" in unknown.output


def test_validation_scores_through_the_same_loop(monkeypatch) -> None:
    from imgtrans.metrics import scoring
    from imgtrans.training import validation

    calls = []
    real = scoring.score
    monkeypatch.setattr(validation, "score", lambda *a, **k: calls.append(1) or real(*a, **k))
    items = [{"A": _grid_images(1, seed=i)[0], "B": _grid_images(1, seed=9)[0], "path": f"{i}"} for i in range(3)]
    gen = imgtrans.create_generator("unet", num_downs=5, ngf=4).train()
    record = validation.validate(gen, [items[0], None, items[2]], stride=32, metrics=validation.build_metrics(["l1"]))
    assert set(record) == {"val_l1", "val_images"} and record["val_images"] == 2 and calls == [1]
    assert gen.training  # modes restored


class _PixelMeans(nn.Module):
    """Stands in for Inception in the FID/KID path: the 0..255 bytes' mean per channel, as a tuple
    like torch-fidelity's extractor returns."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        assert x.dtype == torch.uint8
        return (x.float().mean((2, 3)),)


def test_a_two_way_model_on_an_unpaired_split_is_scored_both_ways(registry, tmp_path: Path, monkeypatch) -> None:
    """A CycleGAN model, evaluated without --direction on an unpaired split: FID and KID of G_A(A)
    against B and of G_B(B) against A, checked against a direct computation on images that
    `imgtrans.translate` wrote with each direction."""
    from PIL import Image

    from imgtrans.core.config import resolve
    from imgtrans.metrics import distribution

    data = write_unpaired(tmp_path / "u", count=4, count_b=4)  # train split: unrelated A and B, 32x32
    tiny = registry.get("recipe", "cyclegan").factory.tiny_config
    config = resolve("cyclegan", registry, [tiny, {"data": {"source": str(data)}, "optim": {"max_steps": 2},
                                                   "run": {"out": str(tmp_path / "run"), "progress": False}}])
    model = imgtrans.train(config).model_path
    monkeypatch.setattr(distribution, "inception_weights", lambda local=None, **kw: tmp_path / "unused.pth")
    monkeypatch.setattr(distribution, "inception_extractor", lambda path, spec=None: _PixelMeans())
    # batch 1 on both sides: oneDNN may pick other kernels for a batch of 4 (it does on AMX CPUs), a
    # grey level moves, and an FID of 4 images is sensitive enough to show it
    result = CliRunner().invoke(cli, ["eval", "--model", str(model), "--data", str(data), "--split", "train",
                                      "--batch-size", "1", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["direction"]: r for r in json.loads(result.output)}
    assert set(rows) == {"AtoB", "BtoA"}

    def features(folder: Path) -> np.ndarray:
        pixels = [np.asarray(Image.open(p).convert("RGB"), dtype=np.float64) for p in sorted(folder.glob("*.png"))]
        return np.stack([p.mean((0, 1)) for p in pixels])

    for direction, source, reference in (("AtoB", "trainA", "trainB"), ("BtoA", "trainB", "trainA")):
        out = tmp_path / f"out_{direction}"
        imgtrans.translate(imgtrans.load_model(str(model), direction=direction), data / source, out,
                           precision="fp32", batch_size=1, channels_last=False)
        x, y = features(out), features(data / reference)
        assert rows[direction]["count"] == 4
        assert rows[direction]["fid"] == pytest.approx(_fid_direct(x, y), rel=1e-6)
        # 4 images a side: every KID subset is the whole set, so the mean is the direct figure
        assert rows[direction]["kid"] == pytest.approx(_kid_direct(x, y), rel=1e-6)
