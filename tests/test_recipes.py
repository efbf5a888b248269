"""Every registered recipe, found through the registry: passes the conformance kit (trains on tiny
data with its tiny_config, resumes bit-exactly from a checkpoint), writes a model file that
translates every direction it declares, and resumes bit-exactly after SIGKILL."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import imgtrans
from imgtrans.core.checkpoint import load_checkpoint, read_metadata
from imgtrans.core.checkpoint_files import step_checkpoints
from imgtrans.core.config import resolve
from imgtrans.testing import check_recipe, recipe_data, tiny_layers

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
    assert any("val_l1" in r for r in map(eval_json, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()))
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


def eval_json(line: str) -> dict:
    import json

    return json.loads(line)


def _train(*args) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "imgtrans", "train", *map(str, args), "--quiet"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err


@pytest.mark.slow
@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_resumes_bit_exactly_after_sigkill(recipe: str, registry, tmp_path: Path) -> None:
    data = recipe_data(registry, recipe, tmp_path / "data", count=6)
    config = resolve(recipe, registry, tiny_layers(registry, recipe, data, "", checkpoint_every_steps=2))
    config.optim.epochs, config.optim.epochs_decay = 2, 2  # 4 epochs x 6 steps
    toml = tmp_path / "tiny.toml"
    toml.write_text(config.to_toml(), encoding="utf-8")
    ref, run = tmp_path / "ref", tmp_path / "run"
    reference = _train(recipe, "--config", toml, "--out", ref)
    killed = _train(recipe, "--config", toml, "--out", run)
    eighth = run / "checkpoints" / "step_00000008.safetensors"  # epoch 2, after 2 of its 6 batches
    while not eighth.exists():
        assert killed.poll() is None, killed.communicate()[1]
        time.sleep(0.002)
    os.kill(killed.pid, signal.SIGKILL)
    killed.communicate()
    _finish(reference)
    for step, path in step_checkpoints(run):  # as if the kill had landed just after step 8
        if step > 8:
            path.unlink()
    (run / "checkpoints" / "last.safetensors").unlink(missing_ok=True)
    _finish(_train("--resume", run))

    want, got = (load_checkpoint(r / "checkpoints" / "last.safetensors") for r in (ref, run))
    assert set(want.tensors) == set(got.tensors)
    assert set(want.state) == set(got.state)
    for group, tensors in {**want.tensors, **want.state}.items():  # networks, optimizers, RNG, recipe state
        other = {**got.tensors, **got.state}[group]
        assert tensors.keys() == other.keys(), group
        for key, value in tensors.items():
            assert torch.equal(value, other[key]), f"{group}.{key}"
    assert got.metadata["training_state"]["step"] == want.metadata["training_state"]["step"] == 24
