"""``--model`` takes a run directory (issue 24 item 6): translate, eval and export use its
``model.safetensors`` and say so in one line; a directory without one is a one-line error naming
the file looked for.  The Python API (``imgtrans.load_model``) resolves it the same way."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import tiny_model_file, write_aligned
from PIL import Image

import imgtrans
from imgtrans.cli import cli
from imgtrans.util.errors import CheckpointError


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "runs" / "demo"
    run.mkdir(parents=True)
    tiny_model_file(run).rename(run / "model.safetensors")
    return run


def _invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], env={"COLUMNS": "80"})


def _tile(path: Path) -> Path:
    Image.new("RGB", (40, 24), (90, 140, 200)).save(path)
    return path


@pytest.mark.parametrize("command", ["translate", "eval", "export"])
def test_a_run_directory_stands_for_its_model_file(command: str, run_dir: Path, tmp_path: Path) -> None:
    args = {"translate": [_tile(tmp_path / "tile.png"), tmp_path / "out.png"],
            "eval": ["--data", write_aligned(tmp_path / "ds", "test", count=2, size=32), "--split", "test"],
            "export": ["-o", tmp_path / "model.pt", "--format", "torchscript"]}[command]
    result = _invoke(command, "--model", run_dir, *args)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == f"model: {run_dir / 'model.safetensors'}"


@pytest.mark.parametrize("command", ["translate", "eval", "export"])
def test_a_directory_without_a_model_is_one_line_naming_the_file(command: str, tmp_path: Path) -> None:
    empty = tmp_path / "runs" / "stopped"
    (empty / "checkpoints").mkdir(parents=True)
    args = {"translate": [_tile(tmp_path / "tile.png"), tmp_path / "out.png"],
            "eval": ["--data", "basemap"], "export": ["-o", tmp_path / "model.onnx"]}[command]
    result = _invoke(command, "--model", empty, *args)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith(f"error: {empty} is a directory without a model: looked for "
                               f"{empty / 'model.safetensors'} (a stopped run finishes with `imgtrans train --resume")


def test_load_model_takes_a_run_directory(run_dir: Path) -> None:
    model = imgtrans.load_model(run_dir)
    assert model.source == str(run_dir / "model.safetensors")
    empty = run_dir.parent / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="looked for .*empty/model.safetensors; pass a model"):
        imgtrans.load_model(empty)
