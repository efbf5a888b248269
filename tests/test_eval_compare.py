"""eval --compare: another model scored beside the first, its outputs in a labelled contact sheet."""
from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner
from helpers import tiny_model_file
from PIL import Image

from imgtrans.cli import cli
from imgtrans.metrics.contact_sheet import HEADER_HEIGHT


def test_compare_scores_both_and_labels_the_sheet(tmp_path, aligned_dir) -> None:
    first = tiny_model_file(tmp_path / "a")
    second = tiny_model_file(tmp_path / "b")
    sheet = tmp_path / "sheet.png"
    result = CliRunner().invoke(cli, ["eval", "--model", str(first), "--name", "quick", "--compare",
                                      f"long={second}", "--data", str(aligned_dir), "--split", "test", "--baseline",
                                      "identity", "--contact-sheet", str(sheet), "--json"])
    assert result.exit_code == 0, result.output
    rows, _ = json.JSONDecoder().raw_decode(result.output[result.output.index("["):])
    assert [r["name"] for r in rows] == ["quick", "long", "identity"]
    with Image.open(sheet) as image:
        width, height = image.size
        pixels = np.asarray(image.convert("RGB"))
    side = (height - HEADER_HEIGHT) // 2                                # the 2 test pairs, square
    assert width == 4 * side and height == HEADER_HEIGHT + 2 * side     # input | quick | long | target
    header = pixels[:HEADER_HEIGHT]
    for column in range(4):                                              # each column is labelled
        assert (header[:, column * side:(column + 1) * side] < 128).any()
    assert (pixels[HEADER_HEIGHT:, side:2 * side] != pixels[HEADER_HEIGHT:, 2 * side:3 * side]).any()


def test_one_model_keeps_the_plain_sheet(tmp_path, aligned_dir) -> None:
    model = tiny_model_file(tmp_path)
    sheet = tmp_path / "sheet.png"
    result = CliRunner().invoke(cli, ["eval", "--model", str(model), "--data", str(aligned_dir), "--split", "test",
                                      "--contact-sheet", str(sheet)])
    assert result.exit_code == 0, result.output
    with Image.open(sheet) as image:
        width, height = image.size
    assert width == 3 * height // 2                                      # 2 rows of input | output | target


def test_names_must_differ(tmp_path, aligned_dir) -> None:
    model = tiny_model_file(tmp_path)
    result = CliRunner().invoke(cli, ["eval", "--model", str(model), "--compare", f"model={model}",
                                      "--data", str(aligned_dir)])
    assert result.exit_code == 2 and "share a name" in result.output
