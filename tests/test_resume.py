"""Resumable training: a run killed mid-epoch and resumed ends bit-identical to an uninterrupted one."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from helpers import TINY, write_aligned

import imgtrans
from imgtrans.cli import cli
from imgtrans.core.checkpoint import load_checkpoint
from imgtrans.core.checkpoint_files import step_checkpoints
from imgtrans.core.config import resolve
from imgtrans.training.resume import resume_config
from imgtrans.util.errors import ConfigError

ITEMS = 6  # steps per epoch at batch size 1


def _config(registry, data: Path, out: Path | str = "", **optim):
    layers = [TINY, {"data": {"source": str(data), "load_size": 64, "crop_size": 64},
                     "optim": {"epochs": 10, "epochs_decay": 10, **optim},
                     "run": {"out": str(out), "progress": False, "log_every": 4, "checkpoint_every_steps": 3}}]
    return resolve("pix2pix", registry, layers)


def _train(*args: str | Path) -> subprocess.Popen:
    # one thread, same environment: the reference and the resumed run compute identically
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "imgtrans", "train", *map(str, args), "--quiet"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return err


def _losses(run: Path) -> list[dict]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("time", "img_per_s")} for r in records if "step" in r]


@pytest.mark.slow
def test_killed_and_resumed_run_equals_the_uninterrupted_one(registry, tmp_path: Path) -> None:
    data = write_aligned(tmp_path / "data", count=ITEMS)
    toml = tmp_path / "tiny.toml"
    toml.write_text(_config(registry, data).to_toml())  # 20 epochs (10 flat + 10 decay) x 6 steps
    ref, run = tmp_path / "ref", tmp_path / "run"

    reference = _train("pix2pix", "--config", toml, "--out", ref)
    killed = _train("pix2pix", "--config", toml, "--out", run)
    ninth = run / "checkpoints" / "step_00000009.safetensors"  # epoch 2, after 3 of its 6 batches
    while not ninth.exists():
        assert killed.poll() is None, killed.communicate()[1]
        time.sleep(0.002)
    os.kill(killed.pid, signal.SIGKILL)
    killed.communicate()
    assert killed.returncode == -signal.SIGKILL
    _finish(reference)

    # As if the kill had landed just after step 9's checkpoint, with a newer one cut short.
    for step, path in step_checkpoints(run):
        if step > 9:
            path.unlink()
    (run / "checkpoints" / "last.safetensors").unlink()
    (run / "checkpoints" / "step_00000012.safetensors").write_bytes(ninth.read_bytes()[: ninth.stat().st_size // 2])

    err = _finish(_train("--resume", run))
    assert "step_00000012.safetensors" in err and "resuming from an earlier checkpoint" in err

    want, got = (load_checkpoint(r / "checkpoints" / "last.safetensors") for r in (ref, run))
    assert set(want.tensors) == set(got.tensors) == {"generator", "discriminator"}
    assert set(want.state) == set(got.state) == {"optim/generator", "optim/discriminator", "rng"}
    for group, tensors in {**want.tensors, **want.state}.items():  # networks, Adam moments and steps, RNG
        other = {**got.tensors, **got.state}[group]
        assert tensors.keys() == other.keys()
        for key, value in tensors.items():
            assert torch.equal(value, other[key]), f"{group}.{key}"
    state, got_state = want.metadata["training_state"], got.metadata["training_state"]
    assert got_state["step"] == state["step"] == 120
    assert got_state["optimizers"] == state["optimizers"] and got_state["schedulers"] == state["schedulers"]
    assert load_checkpoint(run / "model.safetensors").tensors["generator"].keys() == want.tensors["generator"].keys()

    # the log continued where the checkpoint was: the same records (losses included), plus a marker
    assert _losses(run) == _losses(ref)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["resumed_from_step"] for r in records if "resumed_from_step" in r] == [9]

    # the newest 3 step checkpoints are kept; last.safetensors is the newest
    assert [s for s, _ in step_checkpoints(ref)] == [114, 117, 120]
    last = ref / "checkpoints" / "last.safetensors"
    assert last.read_bytes() == (ref / "checkpoints" / "step_00000120.safetensors").read_bytes()


def test_resume_extends_a_finished_run(registry, tmp_path: Path) -> None:
    data = write_aligned(tmp_path / "data", count=3)
    run = tmp_path / "run"
    first = imgtrans.train(_config(registry, data, run, epochs=1, epochs_decay=0))
    assert first.steps == 3
    with pytest.raises(ConfigError, match="only extend"):
        resume_config(run, registry, {"epochs": 0})
    config = resume_config(run, registry, {"epochs": 2})
    result = imgtrans.train(config, resume=True)
    assert result.steps == 6 and "epochs = 2" in (run / "config.toml").read_text()
    steps = [r["step"] for r in _losses(run)]
    assert steps == [3, 4, 6]  # the epoch end, then every 4 steps and at the end


def _cli(*args) -> tuple[int, list[str]]:
    result = CliRunner().invoke(cli, ["train", *map(str, args)])
    return result.exit_code, result.output.strip().splitlines()


def test_resume_errors_are_one_line(registry, tmp_path: Path) -> None:
    code, lines = _cli("--resume", tmp_path)
    assert code == 2 and len(lines) == 1 and "holds no config.toml" in lines[0], lines

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    data = write_aligned(tmp_path / "data", count=2)
    (run / "config.toml").write_text(_config(registry, data, run).to_toml())
    code, lines = _cli("--resume", run, "--quiet")
    assert code == 2 and len(lines) == 1 and "no checkpoint to resume from" in lines[0], lines

    code, lines = _cli("--resume", run, "--lr", "0.1", "--set", "generator.ngf=4")
    assert code == 2 and len(lines) == 1 and "--lr, --set cannot be given" in lines[0], lines
    code, lines = _cli("--resume", run, "--epochs-decay", "3")
    assert code == 2 and len(lines) == 1 and "--epochs-decay 3 is below the run's 10" in lines[0], lines
    code, lines = _cli("--resume", run, "--max-steps", "50")
    assert code == 2 and len(lines) == 1 and "no limit" in lines[0], lines
