"""eval never writes over data, a model or anything it did not write (translate's rules); the run
directory's counterpart is in test_run_safety.py."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from helpers import tiny_model_file, write_aligned

from imgtrans.cli import cli
from imgtrans.util.outputmarks import MARK_NAME, read_mark




def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _eval(*args: object):
    return CliRunner().invoke(cli, ["eval", "--metric", "l1", *map(str, args)])


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    return tiny_model_file(tmp_path), write_aligned(tmp_path / "ds", "test", count=2, size=32)


@pytest.mark.parametrize("where", ["split", "data", "inside", "model", "input", "around"])
def test_eval_never_writes_into_the_data_or_over_the_model(setup, tmp_path: Path, where: str) -> None:
    model, data = setup
    first = sorted((data / "test").iterdir())[0]
    option, target = {
        "split": ("--out", data / "test"),          # the sweep's case: every pair replaced by a translation
        "data": ("--out", data),
        "inside": ("--out", data / "test" / "new"),
        "model": ("--contact-sheet", model),        # the sweep's case: the model became a PNG
        "input": ("--contact-sheet", first),        # the sweep's case: an input replaced
        "around": ("--report", tmp_path),           # a folder holding the data and the model
    }[where]
    before, model_bytes = _digest(data), model.read_bytes()
    for extra in ([], ["--overwrite"]):
        result = _eval("--model", model, "--data", data, option, target, *extra)
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "refusing to write" in lines[0] and str(target) in lines[0], lines
    assert _digest(data) == before and model.read_bytes() == model_bytes


def test_existing_outputs_need_overwrite_and_must_be_evals_own(setup, tmp_path: Path) -> None:
    model, data = setup
    out, sheet, report = tmp_path / "out", tmp_path / "sheet.png", tmp_path / "report"
    args = ["--model", model, "--data", data, "--out", out, "--contact-sheet", sheet, "--report", report]
    assert _eval(*args).exit_code == 0
    assert read_mark(out) == "eval-out" and read_mark(report) == "eval-report"
    assert sorted(p.name for p in out.iterdir()) == [MARK_NAME, "pair_00.png", "pair_01.png"]

    again = _eval(*args)
    assert again.exit_code == 2 and "already holds files; pass --overwrite" in again.output
    (out / "stale.png").write_bytes(b"from an earlier eval")  # an earlier eval's output, replaced whole
    assert _eval(*args, "--overwrite").exit_code == 0
    assert not (out / "stale.png").exists() and (out / "pair_00.png").is_file()

    # what a user wrote is never replaced, --overwrite or not
    (report / "notes.txt").write_text("mine")
    refused = _eval(*args, "--overwrite")
    assert refused.exit_code == 2 and "refusing to --overwrite --report" in refused.output
    assert "'notes.txt', which eval did not write" in refused.output
    (report / "notes.txt").unlink()

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "index.html").write_text("<p>my page</p>")
    refused = _eval("--model", model, "--data", data, "--report", mine, "--overwrite")
    assert refused.exit_code == 2 and "eval did not write it" in refused.output
    assert (mine / "index.html").read_text() == "<p>my page</p>"

    photo = tmp_path / "photo.png"
    photo.write_bytes(sheet.read_bytes()[:8] + b"not eval's")
    refused = _eval("--model", model, "--data", data, "--contact-sheet", photo, "--overwrite")
    assert refused.exit_code == 2 and "eval did not write it" in refused.output



def test_translate_eval_and_serve_write_the_same_png_bytes(setup, tmp_path: Path) -> None:
    """One encoder (imgtrans.data.images.encode_image): the same pixels are the same file, whichever
    job wrote them (eval wrote Pillow's default PNG level before, translate level 1)."""
    from imgtrans.data.images import encode_image, load_image

    model, data = setup
    assert _eval("--model", model, "--data", data, "--out", tmp_path / "eval").exit_code == 0
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for pair in sorted((data / "test").glob("*.png")):  # the A halves, as translate's inputs
        Image.fromarray(load_image(pair)[:, :32]).save(inputs / pair.name)
    translated = CliRunner().invoke(cli, ["translate", "--model", str(model), "--no-channels-last",
                                          str(inputs), str(tmp_path / "translate")])
    assert translated.exit_code == 0, translated.output
    for name in ("pair_00.png", "pair_01.png"):
        for job in ("eval", "translate"):  # the same pixels always become the same bytes (serve's body too)
            written = (tmp_path / job / name).read_bytes()
            assert encode_image(load_image(tmp_path / job / name)) == written, job
        levels = [load_image(tmp_path / job / name).astype(int) for job in ("eval", "translate")]
        assert np.abs(levels[0] - levels[1]).max() <= 1  # translate reads uint8 into channels-last storage
