"""Real (small) training runs: the loss goes down, the run directory is complete."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import TINY

import imgtrans
from imgtrans.core.checkpoint import load_checkpoint, read_metadata
from imgtrans.core.config import resolve
from imgtrans.training.optim import linear_decay
from imgtrans.training.trainer import build_recipe


def _config(registry, source: Path | str, out: Path, **sections):
    layers = [TINY, {"data": {"source": str(source), "load_size": 64, "crop_size": 64},
                     "run": {"out": str(out), "progress": False, "log_every": 5}}]
    return resolve("pix2pix", registry, layers + [sections])


@pytest.mark.slow
def test_training_on_basemap_lowers_the_l1_loss(registry, basemap_root: Path, tmp_path: Path) -> None:
    cfg = _config(registry, "basemap", tmp_path / "run", data={"max_items": 8},
                  optim={"epochs": 10, "epochs_decay": 0, "lr": 1e-3})
    result = imgtrans.train(cfg)
    l1 = [r["G_L1"] for r in result.history]
    assert result.steps == 80 and len(l1) == 16
    first, last = sum(l1[:3]) / 3, sum(l1[-3:]) / 3
    assert last < 0.8 * first, l1

    run = result.run_dir
    assert (run / "config.toml").is_file() and (run / "checkpoints" / "last.safetensors").is_file()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert set(records[0]) == {"time", "device", "precision", "processes"}  # the set-up record comes first
    assert records[-1]["step"] == 80 and records[-1]["img_per_s"] > 0 and {"G_GAN", "D_real", "D_fake"} <= set(records[1])
    assert len(list((run / "previews").glob("epoch_*.png"))) == 10
    meta = read_metadata(result.model_path)
    assert meta["generator"] == {"name": "unet", "num_downs": 6, "ngf": 8} and meta["stride"] == 64
    assert meta["dataset"] == "basemap"
    assert meta["config"]["optim"]["epochs"] == 10 and meta["step"] == 80
    assert meta["norm_stats"] == "instance", "batch-1 training only ever saw per-image statistics"
    assert set(load_checkpoint(run / "checkpoints" / "last.safetensors").tensors) == {"generator", "discriminator"}


def test_one_step_at_true_default_sizes(registry, aligned_dir: Path) -> None:
    """The paper's configuration exactly: unet_256 (ngf 64) + patchgan_70 at 256x256, batch 1."""
    cfg = resolve("pix2pix", registry, [])
    recipe = build_recipe(cfg, registry)
    assert sum(p.numel() for p in recipe.generator.parameters()) == 54_413_955
    optimizers = recipe.configure_optimizers(cfg.optim.lr, (cfg.optim.beta1, cfg.optim.beta2))
    torch.manual_seed(0)
    batch = {"A": torch.rand(1, 3, 256, 256) * 2 - 1, "B": torch.rand(1, 3, 256, 256) * 2 - 1}
    before = recipe.generator.model.model[0].weight.detach().clone()
    d_before = recipe.discriminator.model[0].weight.detach().clone()
    losses = recipe.train_step(batch, optimizers)
    assert set(losses) == {"G_GAN", "G_L1", "D_real", "D_fake"}
    assert all(torch.isfinite(v) for v in losses.values())
    assert 30 < float(losses["G_L1"]) < 100  # lambda (100) x mean |G(A) - B| for uniform noise
    assert not torch.equal(before, recipe.generator.model.model[0].weight)
    assert not torch.equal(d_before, recipe.discriminator.model[0].weight)
    assert not any(p.requires_grad for p in recipe.discriminator.parameters()), "D is frozen for G's update"


def test_linear_decay_schedule_is_the_reference_one() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = linear_decay(opt, epochs=2, epochs_decay=3)
    lrs = []
    for _ in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1.0, 1.0, 0.75, 0.5, 0.25])


def test_nan_loss_stops_with_a_clear_message(registry, aligned_dir: Path, tmp_path: Path) -> None:
    cfg = _config(registry, aligned_dir, tmp_path / "run", optim={"lr": 1e30, "epochs": 3, "epochs_decay": 0},
                  run={"out": str(tmp_path / "run"), "progress": False, "log_every": 1})
    with pytest.raises(FloatingPointError, match="NaN or infinite"):
        imgtrans.train(cfg)


def test_existing_run_directory_is_kept(registry, aligned_dir: Path, tmp_path: Path) -> None:
    from imgtrans.util.errors import ConfigError

    out = tmp_path / "run"
    out.mkdir()
    (out / "important.txt").write_text("keep me")
    cfg = _config(registry, aligned_dir, out, optim={"max_steps": 1})
    with pytest.raises(ConfigError, match="--overwrite"):
        imgtrans.train(cfg)
    assert (out / "important.txt").read_text() == "keep me"


def test_validation_and_run_page(registry, aligned_dir: Path, tmp_path: Path) -> None:
    from helpers import write_aligned

    write_aligned(aligned_dir, "val", count=2, seed=5)
    cfg = _config(registry, aligned_dir, tmp_path / "run", optim={"epochs": 2, "epochs_decay": 0},
                  run={"out": str(tmp_path / "run"), "progress": False, "log_every": 2, "validate_every": 1,
                       "preview_every_steps": 3})
    result = imgtrans.train(cfg)
    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in records if "val_l1" in r]
    assert [r["epoch"] for r in val] == [1, 2] and all(r["val_images"] == 2 for r in val)
    assert all(0 < r["val_l1"] < 1 and 0 < r["val_ssim"] <= 1 for r in val)
    assert not any("val_l1" in r for r in result.history), "validation does not skew the loss windows"
    page = (result.run_dir / "index.html").read_text()
    assert "loss_curve.png" in page and "epoch_0002.png" in page
    steps = sorted(p.name for p in (result.run_dir / "previews").glob("step_*.png"))
    assert steps == [f"step_{s:08d}.png" for s in range(3, result.steps + 1, 3)] and "step 3" in page
    assert (result.run_dir / "loss_curve.png").stat().st_size > 1000


@pytest.mark.parametrize("recipe", ["cyclegan", "pix2pix"])
def test_train_prints_validation_figures_and_names_the_run_page(recipe: str, tmp_path: Path) -> None:
    """Every direction's validation figures reach the console (they only reached metrics.jsonl),
    and the last line names the run's index.html."""
    from click.testing import CliRunner
    from helpers import write_aligned

    from imgtrans.cli import cli

    data = write_aligned(tmp_path / "data", "train", count=2, size=32)
    write_aligned(data, "val", count=2, size=32, seed=5)
    small = (["--set", "generator_a.ngf=4", "--set", "generator_b.ngf=4", "--set", "discriminator_a.ndf=4",
              "--set", "discriminator_b.ndf=4"] if recipe == "cyclegan" else
             ["--set", "generator.name=unet", "--set", "generator.num_downs=5", "--set", "generator.ngf=4",
              "--set", "discriminator.ndf=4"])
    run = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", recipe, "--data", str(data), "--out", str(run), *small,
                                      "--load-size", "32", "--crop-size", "32", "--epochs", "2",
                                      "--set", "optim.epochs_decay=0", "--validate-every", "1"],
                                env={"COLUMNS": "80"}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    validation = [line for line in lines if line.startswith("validation after epoch")]
    assert [line.split()[3] for line in validation] == ["1", "2"], result.output
    way_back = (" BtoA_l1=", " BtoA_psnr=", " BtoA_ssim=") if recipe == "cyclegan" else ()
    for line in validation:
        assert "(2 images): l1=" in line and all(key in line for key in (" psnr=", " ssim=", *way_back)), line
    assert lines[-1] == f"report: {run / 'index.html'}" and (run / "index.html").is_file()
