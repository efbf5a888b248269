"""Resuming a run: extending a finished one, and the one-line refusals.

That a resumed run ends bit-identical to an uninterrupted one is checked for every recipe by the
conformance kit (in-process) and by tests/test_recipes.py (after SIGKILL)."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import TINY, losses, write_aligned

import imgtrans
from imgtrans.cli import cli
from imgtrans.core.config import resolve
from imgtrans.training.resume import resume_config
from imgtrans.util.errors import ConfigError


def _config(registry, data: Path, out: Path | str = "", **optim):
    layers = [TINY, {"data": {"source": str(data), "load_size": 64, "crop_size": 64},
                     "optim": {"epochs": 10, "epochs_decay": 10, **optim},
                     "run": {"out": str(out), "progress": False, "log_every": 4, "checkpoint_every_steps": 3}}]
    return resolve("pix2pix", registry, layers)


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
    steps = [r["step"] for r in losses(run)]
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
