"""Watching a run: validation metrics, the loss-curve PNG, the HTML page, the optional TensorBoard logger."""
from __future__ import annotations

import json
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import write_aligned
from PIL import Image
from torch import nn

import imgtrans
from imgtrans.data.formats import AlignedDataset
from imgtrans.training.report import SIZE, TensorBoardLogger, plot_losses, write_html
from imgtrans.training.validation import validate


class Identity(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Conv2d(3, 3, 1)  # a submodule, so mode restoration has something to check

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_validate_scores_a_tiny_generator_and_restores_train_mode(tmp_path: Path) -> None:
    root = write_aligned(tmp_path / "pairs", split="val", count=3, size=48)  # 48 is not a multiple of 32
    dataset = AlignedDataset(root, split="val", transform=None)
    torch.manual_seed(0)
    gen = imgtrans.create_generator("unet", num_downs=5, ngf=4)
    gen.train()
    result = validate(gen, dataset, stride=32)
    assert set(result) == {"val_l1", "val_psnr", "val_ssim", "val_images"}
    assert result["val_images"] == 3
    assert all(math.isfinite(result[k]) for k in ("val_l1", "val_psnr", "val_ssim"))
    assert 0 <= result["val_l1"] <= 1 and -1 <= result["val_ssim"] <= 1
    assert gen.training and all(m.training for m in gen.modules())
    assert all(p.grad is None for p in gen.parameters())

    gen.eval()
    assert validate(gen, dataset, stride=32, norm_stats="running", max_items=1)["val_images"] == 1
    assert not any(m.training for m in gen.modules())


def test_validate_identity_on_identical_pairs_is_perfect(tmp_path: Path) -> None:
    folder = tmp_path / "same" / "val"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(2):
        a = (rng.random((20, 24, 3)) * 255).astype(np.uint8)
        Image.fromarray(np.concatenate([a, a], axis=1)).save(folder / f"p{i}.png")
    items = [None, *AlignedDataset(tmp_path / "same", split="val", transform=None)]  # None: a skipped item
    gen = Identity().train()
    result = validate(gen, items, stride=8)
    assert result["val_l1"] == 0
    assert result["val_ssim"] == pytest.approx(1.0, abs=1e-6)
    assert result["val_psnr"] == math.inf
    assert result["val_images"] == 2
    assert gen.training and gen.inner.training


def _write_metrics(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_plot_losses_draws_a_png_of_the_expected_size(tmp_path: Path) -> None:
    records = []
    for step in range(5, 105, 5):
        records.append({"time": 1.0, "step": step, "epoch": 1 + step // 50, "G_GAN": 1 / step, "G_L1": 50 - step / 4,
                        "D_real": 0.6, "D_fake": 0.5 + step / 1000, "img_per_s": 3.0, "lr": 2e-4})
        if step % 50 == 0:
            records.append({"step": step, "epoch": step // 50, "val_l1": 0.3 - step / 1000, "val_psnr": 18.0,
                            "val_ssim": 0.4, "val_images": 4})
    records.append({"step": 110, "G_GAN": 0.9})  # lacks the other keys
    records.append({"skipped_files": 2})  # no step at all
    png = plot_losses(_write_metrics(tmp_path / "metrics.jsonl", records), tmp_path / "out" / "loss.png")
    img = Image.open(png)
    assert img.size == SIZE
    assert len(img.convert("RGB").getcolors(maxcolors=1 << 16) or range(2)) > 5
    assert [p.name for p in png.parent.iterdir()] == ["loss.png"]  # no temporary file left


@pytest.mark.parametrize("records", [[{"step": 1, "G_GAN": 0.7, "D_real": 0.5}], [], None])
def test_plot_losses_copes_with_one_record_none_or_no_file(tmp_path: Path, records) -> None:
    metrics = tmp_path / "metrics.jsonl"
    if records is not None:
        _write_metrics(metrics, records)
    img = Image.open(plot_losses(metrics, tmp_path / "loss.png")).convert("RGB")
    assert img.size == SIZE
    assert len(img.getcolors(maxcolors=1 << 16) or range(2)) > 1


def test_write_html_links_curve_and_previews_and_escapes_config(tmp_path: Path) -> None:
    run = tmp_path / "my-run"
    (run / "previews").mkdir(parents=True)
    (run / "config.toml").write_text('[data]\nsource = "<script>alert(1)</script>"\n', encoding="utf-8")
    _write_metrics(run / "metrics.jsonl", [
        {"step": 10, "epoch": 1, "G_GAN": 0.8, "G_L1": 20.0, "D_real": 0.6, "D_fake": 0.4, "img_per_s": 2.0,
         "lr": 2e-4},
        {"step": 10, "epoch": 1, "val_l1": 0.25, "val_psnr": 14.5, "val_ssim": 0.31, "val_images": 3},
    ])
    for epoch in (1, 2, 10):
        Image.new("RGB", (12, 4), "red").save(run / "previews" / f"epoch_{epoch:04d}.png")
    page = write_html(run)
    assert page == run / "index.html"
    text = page.read_text(encoding="utf-8")
    assert "<title>my-run</title>" in text
    assert "src='loss_curve.png'" in text and (run / "loss_curve.png").is_file()
    positions = [text.index(f"previews/epoch_{e:04d}.png") for e in (10, 2, 1)]
    assert positions == sorted(positions)  # newest first
    assert "epoch 10" in text
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "0.25" in text and "14.5" in text and "0.31" in text  # the validation figures
    assert "G_L1" in text


def test_tensorboard_logger_is_none_with_a_warning_when_missing(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # makes the import raise ImportError
    assert TensorBoardLogger.create(tmp_path) is None
    err = capsys.readouterr().err
    assert "tensorboard" in err and err.count("\n") == 1


def test_tensorboard_logger_writes_float_scalars_by_step(tmp_path: Path, monkeypatch) -> None:
    calls = []

    class FakeWriter:
        def __init__(self, log_dir: str):
            calls.append(("init", log_dir))

        def add_scalar(self, tag, value, step):
            calls.append((tag, value, step))

        def flush(self):
            pass

        def close(self):
            calls.append(("close",))

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=FakeWriter))
    logger = TensorBoardLogger.create(tmp_path)
    logger.log({"time": 5.0, "step": 10, "epoch": 1, "G_GAN": 0.5, "val_l1": 0.2, "val_images": 3, "lr": 2e-4})
    logger.log({"skipped_files": 1})
    logger.close()
    assert calls == [("init", str(tmp_path / "tensorboard")), ("loss/G_GAN", 0.5, 10), ("val/l1", 0.2, 10),
                     ("train/lr", 2e-4, 10), ("close",)]


def test_step_previews_are_captioned_and_listed_newest_first(tmp_path: Path) -> None:
    import os

    run = tmp_path / "run"
    (run / "previews").mkdir(parents=True)
    for i, name in enumerate(["epoch_0001.png", "step_00000150.png", "epoch_0002.png"]):
        path = run / "previews" / name
        Image.new("RGB", (12, 4), "red").save(path)
        os.utime(path, ns=(10**18 + i * 10**9, 10**18 + i * 10**9))  # written in this order
    text = write_html(run).read_text(encoding="utf-8")
    positions = [text.index(f"previews/{n}") for n in ("epoch_0002.png", "step_00000150.png", "epoch_0001.png")]
    assert positions == sorted(positions)
    assert "step 150" in text and "epoch 2" in text


def test_each_optimizer_learning_rate_is_logged_when_they_differ() -> None:
    """Issue 12 #6: a recipe may give its optimizers different rates; the log shows each one."""
    from imgtrans.training.records import learning_rates

    assert learning_rates({"generator": 2e-4, "discriminator": 2e-4}) == {"lr": 2e-4}
    assert learning_rates({"generator": 2e-4, "discriminator": 1e-4}) == {"lr_generator": 2e-4,
                                                                         "lr_discriminator": 1e-4}
