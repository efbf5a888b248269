"""Mixed precision in the trainer: the automatic choice, bf16 and fp16 runs, the loss scale on resume."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import TINY, assert_same_networks, write_aligned

import imgtrans
from imgtrans.core.checkpoint import load_checkpoint
from imgtrans.core.config import resolve
from imgtrans.training import step_engine as engine_mod
from imgtrans.training.checkpoints import STATE_KEY
from imgtrans.training.optim import fast_adam
from imgtrans.training.resume import resume_config
from imgtrans.util.errors import ConfigError


def _config(registry, data: Path, out: Path, **run):
    return resolve("pix2pix", registry, [TINY, {
        "data": {"source": str(data), "load_size": 64, "crop_size": 64},
        "optim": {"epochs": 1, "epochs_decay": 1},
        "run": {"out": str(out), "progress": False, "log_every": 2, "checkpoint_every_steps": 2, **run}}])


@pytest.mark.parametrize("native,expected", [(True, "bf16-mixed"), (False, "fp32")])
def test_auto_precision_follows_the_hardware(monkeypatch, native: bool, expected: str) -> None:
    monkeypatch.setattr(engine_mod, "native_bf16", lambda device: native)
    assert engine_mod.resolve_precision("auto", torch.device("cpu")) == expected
    assert engine_mod.resolve_precision("fp16-mixed", torch.device("cpu")) == "fp16-mixed"


def test_unknown_precision_is_refused_with_the_choices(registry, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="bf16-mixed"):
        _config(registry, tmp_path, tmp_path / "run", precision="fp8")


def test_fast_adam_is_fused_on_cpu() -> None:
    opt = fast_adam([torch.nn.Parameter(torch.zeros(3))], 1e-3, (0.5, 0.999))
    assert opt.defaults["fused"] is True


@pytest.mark.parametrize("precision", ["bf16-mixed", "fp16-mixed"])
def test_mixed_precision_trains_with_fp32_weights(registry, tmp_path: Path, precision: str) -> None:
    data = write_aligned(tmp_path / "data", count=4)
    result = imgtrans.train(_config(registry, data, tmp_path / "run", precision=precision))
    assert result.steps == 8
    import json

    first_record = json.loads((result.run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert first_record["precision"] == precision and first_record["processes"] == 1
    first, last = result.history[0], result.history[-1]
    assert all(torch.isfinite(torch.tensor(v)) for v in last.values() if isinstance(v, float))
    assert last["G_L1"] < first["G_L1"]  # it learns (B is a colour inversion of A)
    ckpt = load_checkpoint(result.run_dir / "checkpoints" / "last.safetensors")
    assert {t.dtype for t in ckpt.state_dict("generator").values() if t.is_floating_point()} == {torch.float32}
    scaler = ckpt.metadata[STATE_KEY]["scaler"]
    if precision == "fp16-mixed":
        assert scaler["scale"] > 0 and "_growth_tracker" in scaler
    else:
        assert scaler == {}


def test_fp16_loss_scale_survives_resume(registry, tmp_path: Path) -> None:
    """Stopping after 4 steps and resuming gives the uninterrupted run's weights and loss scale."""
    data = write_aligned(tmp_path / "data", count=4)
    whole = imgtrans.train(_config(registry, data, tmp_path / "whole", precision="fp16-mixed"))
    part = _config(registry, data, tmp_path / "part", precision="fp16-mixed")
    part.optim.max_steps = 4
    imgtrans.train(part)
    resumed = imgtrans.train(resume_config(tmp_path / "part", registry, {"max_steps": 8}), resume=True)
    assert resumed.steps == whole.steps == 8
    a = load_checkpoint(whole.run_dir / "checkpoints" / "last.safetensors")
    b = load_checkpoint(resumed.run_dir / "checkpoints" / "last.safetensors")
    assert a.metadata[STATE_KEY]["scaler"] == b.metadata[STATE_KEY]["scaler"]
    assert_same_networks(a, b, ("generator", "discriminator"))


def test_recipe_without_engine_calls_pytorch_directly(registry) -> None:
    """Recipes used outside the trainer (notebooks, tests) need no engine."""
    cfg = resolve("pix2pix", registry, [TINY])
    from imgtrans.training.trainer import build_recipe

    recipe = build_recipe(cfg, registry)
    assert recipe.engine is None
    opts = recipe.configure_optimizers(2e-4, (0.5, 0.999))
    before = next(recipe.generator.parameters()).detach().clone()
    losses = recipe.train_step({k: torch.rand(1, 3, 64, 64) * 2 - 1 for k in "AB"}, opts)
    assert set(losses) == {"G_GAN", "G_L1", "D_real", "D_fake"}
    assert not torch.equal(before, next(recipe.generator.parameters()))


@pytest.mark.parametrize("precision", ["bf16-mixed", "fp16-mixed"])
def test_a_network_updated_within_a_step_runs_with_its_new_weights(precision: str) -> None:
    """Autocast caches its low-precision copy of each trainable weight for the whole step; a recipe
    that steps a network and runs it again in the same ``train_step`` must see the new weights."""
    torch.manual_seed(0)
    net = torch.nn.Linear(8, 8)
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    engine = engine_mod.StepEngine(precision, torch.device("cpu"))
    x = torch.randn(4, 8)
    with engine.autocast():
        engine.backward(net(x).float().square().mean())
        engine.step(opt)
        after = net(x).float()
    expected = torch.nn.functional.linear(x, net.weight.detach(), net.bias.detach())
    assert (after - expected).abs().max() < 0.05 * expected.abs().max()
