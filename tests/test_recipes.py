"""Every registered recipe, found through the registry: passes the conformance kit (trains on tiny
data with its tiny_config, resumes bit-exactly from a checkpoint), writes a model file that
translates every direction it declares, and survives SIGKILL: resumed from its newest intact
checkpoint, it ends as the uninterrupted run does."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import assert_same_state, finish, kill_when, losses, records, train_process
from PIL import Image

import imgtrans
from imgtrans.core.checkpoint import load_checkpoint, read_metadata
from imgtrans.core.checkpoint_files import step_checkpoints
from imgtrans.core.config import resolve
from imgtrans.core.interfaces import Recipe
from imgtrans.testing import check_recipe, recipe_data, tiny_layers
from imgtrans.training.building import build_recipe

RECIPES = imgtrans.get_registry().names("recipe")


def _recipe_cls(name: str):
    return imgtrans.get_registry().get("recipe", name).factory


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_passes_the_conformance_kit(recipe: str, registry, tmp_path: Path) -> None:
    """Declarations, two steps, and a resume from the checkpoint of a stopped run that ends
    bit-identical to an uninterrupted one (imgtrans.testing.check_recipe, what plugin authors run)."""
    assert check_recipe(registry, recipe, tmp_path)["steps"] == 4


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_trains_and_translates_every_direction(recipe: str, registry, tmp_path: Path) -> None:
    data = recipe_data(registry, recipe, tmp_path / "data")
    config = resolve(recipe, registry, tiny_layers(registry, recipe, data, tmp_path / "run", validate_every=1,
                                                   validate_split="test"))
    result = imgtrans.train(config)
    assert result.steps == 8
    assert any("val_l1" in r for r in records(tmp_path / "run"))
    meta = read_metadata(result.model_path)
    cls = _recipe_cls(recipe)
    assert set(meta["directions"]) == set(cls.directions)
    assert set(meta["networks"]) == set(cls.directions.values())  # generators only: no discriminator
    image = tmp_path / "in.png"
    Image.fromarray((np.random.default_rng(0).random((40, 48, 3)) * 255).astype(np.uint8)).save(image)
    for direction in cls.directions:
        model = imgtrans.load_model(str(result.model_path), direction=direction)
        assert model.direction == direction
        out = tmp_path / f"out_{direction}.png"
        imgtrans.translate(model, str(image), str(out))
        assert Image.open(out).size == (48, 40)
    columns = (tmp_path / "run" / "previews" / "columns.txt").read_text().strip().split(" | ")
    assert len(columns) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_resumes_bit_exactly_after_sigkill(recipe: str, registry, tmp_path: Path) -> None:
    """SIGKILLed mid-epoch and mid-window, with a newer checkpoint cut short, a run resumes from
    its newest intact checkpoint and ends as the uninterrupted run does: networks, optimizers, RNG
    and recipe state, schedules and the metrics log; the newest checkpoints are kept."""
    data = recipe_data(registry, recipe, tmp_path / "data", count=6)
    config = resolve(recipe, registry, tiny_layers(registry, recipe, data, "", checkpoint_every_steps=2, log_every=3))
    config.optim.epochs, config.optim.epochs_decay = 2, 2  # 4 epochs x 6 steps
    toml = tmp_path / "tiny.toml"
    toml.write_text(config.to_toml(), encoding="utf-8")
    ref, run = tmp_path / "ref", tmp_path / "run"
    reference = train_process(recipe, "--config", toml, "--out", ref)
    killed = train_process(recipe, "--config", toml, "--out", run)
    eighth = run / "checkpoints" / "step_00000008.safetensors"  # epoch 2 after 2 of its 6 batches; a window of 3
    kill_when(killed, eighth)

    # as if the kill had landed just after step 8's checkpoint, with a newer one cut short
    for step, path in step_checkpoints(run):
        if step > 8:
            path.unlink()
    (run / "checkpoints" / "last.safetensors").unlink()
    (run / "checkpoints" / "step_00000010.safetensors").write_bytes(eighth.read_bytes()[: eighth.stat().st_size // 2])
    resumed = train_process("--resume", run)  # while the reference finishes: they share nothing
    finish(reference)
    err = finish(resumed)
    assert "step_00000010.safetensors" in err and "resuming from an earlier checkpoint" in err

    want, got = (load_checkpoint(r / "checkpoints" / "last.safetensors") for r in (ref, run))
    built = build_recipe(config, registry)  # what the checkpoints must hold: every network, optimizer, RNG
    optimizers = built.configure_optimizers(config.optim.lr, (config.optim.beta1, config.optim.beta2))
    own_state = type(built).state_dict is not Recipe.state_dict  # a recipe with state of its own (image pools)
    assert set(want.tensors) == set(built.networks())
    assert set(want.state) == {"rng", *(f"optim/{name}" for name in optimizers), *(["recipe"] if own_state else [])}
    assert_same_state(want, got)  # bit-identical, group by group
    state, got_state = want.metadata["training_state"], got.metadata["training_state"]
    assert got_state["step"] == state["step"] == 24
    assert got_state["optimizers"] == state["optimizers"] and got_state["schedulers"] == state["schedulers"]
    model = load_checkpoint(run / "model.safetensors")
    for slot in _recipe_cls(recipe).directions.values():
        assert model.tensors[slot].keys() == want.tensors[slot].keys()

    # the log continued where the checkpoint was: the same records (losses included), plus a marker
    assert losses(run) == losses(ref)
    assert [r["resumed_from_step"] for r in records(run) if "resumed_from_step" in r] == [8]

    # the newest 3 step checkpoints are kept; last.safetensors is the newest
    assert [s for s, _ in step_checkpoints(ref)] == [20, 22, 24]
    last = ref / "checkpoints" / "last.safetensors"
    assert last.read_bytes() == (ref / "checkpoints" / "step_00000024.safetensors").read_bytes()
