"""The command line, through Click's CliRunner: help everywhere, one-line errors, real jobs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from imgtrans.cli import cli

COMMANDS = [[], ["train"], ["translate"], ["eval"], ["plugins"], ["list"]]


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "imgtrans")
def test_every_command_has_help(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.exit_code == 0 and "Usage:" in result.output and len(result.output) > 200


def test_list_and_plugins() -> None:
    result = run("list", "generator", "unet*", "--json")
    assert [r["name"] for r in json.loads(result.output) if r["plugin"] == "pix2pix"] == ["unet", "unet_128", "unet_256"]
    plugins = {p["name"]: p for p in json.loads(run("plugins", "--json").output)}
    assert plugins["pix2pix"]["distribution"] == "imgtrans" and plugins["pix2pix"]["error"] is None
    assert plugins["pix2pix"]["hooks"] == ["register_components", "register_datasets"]
    assert "basemap" in run("list", "dataset").output


@pytest.mark.parametrize("args,expected", [
    (["--set", "generator.nfg=32"], "Did you mean 'ngf'?"),
    # the choices list every installed plugin's generators (cut_resnet_9blocks, ...): only the bundled core of it
    (["--generator", "unet_265"], "unknown generator 'unet_265'. Did you mean 'unet_256'? Valid choices: "),
    (["--generator", "unet_265"], "resnet_6blocks, resnet_9blocks, unet, unet_128, unet_256"),
    (["--gan-loss", "hinge"], "Valid choices: bce, l1, lsgan"),
    (["--set", "ngf=32"], "SECTION.KEY=VALUE"),
    (["--data", "no_such_dataset"], "neither an existing folder nor a known dataset"),
])
def test_bad_input_is_one_line_error(args: list[str], expected: str, tmp_path: Path) -> None:
    base = ["train", "pix2pix", "--out", tmp_path / "run", "--quiet"]
    if "--data" not in args:
        base += ["--data", tmp_path]
    result = CliRunner().invoke(cli, [str(a) for a in base + args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.output
    assert "Traceback" not in result.output


def test_unknown_recipe_is_one_line_error() -> None:
    result = CliRunner().invoke(cli, ["train", "pix3pix", "--data", "x"])
    assert result.exit_code == 2 and "Did you mean 'pix2pix'?" in result.output


@pytest.mark.slow
def test_train_translate_eval_end_to_end(aligned_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "tiny.toml"
    config.write_text('[generator]\nname = "unet"\nnum_downs = 6\nngf = 8\n[discriminator]\nndf = 8\n')
    out = tmp_path / "run"
    result = run("train", "pix2pix", "--data", aligned_dir, "--config", config, "--out", out, "--epochs", 1,
                 "--epochs-decay", 1, "--load-size", 72, "--crop-size", 64, "--lambda-l1", 50, "--seed", 3,
                 "--device", "cpu", "--set", "optim.beta1=0.6", "--quiet")
    assert result.exit_code == 0, result.output
    assert "8 steps" in result.output
    resolved = (out / "config.toml").read_text()
    assert "lambda_l1 = 50.0" in resolved and "beta1 = 0.6" in resolved and "seed = 3" in resolved

    model = out / "model.safetensors"
    img = tmp_path / "odd.png"
    Image.new("RGB", (77, 51), (10, 200, 30)).save(img)
    result = run("translate", "--model", model, img, tmp_path / "odd_out.png", "--norm-stats", "instance")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "odd_out.png").size == (77, 51)

    result = run("eval", "--model", model, "--data", aligned_dir, "--baseline", "untrained", "--baseline",
                 "identity", "--json", "--contact-sheet", tmp_path / "sheet.png")
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert set(rows) == {"model", "untrained", "identity"} and rows["model"]["count"] == 2
    assert rows["identity"]["l1"] > 0.3  # B is the colour inverse of A
    assert Image.open(tmp_path / "sheet.png").size == (3 * 64, 2 * 64)


def test_translate_reports_failures_with_exit_status_1(tmp_path: Path) -> None:
    import imgtrans
    from imgtrans.core.checkpoint import save_checkpoint

    gen = imgtrans.create_generator("unet", num_downs=5, ngf=4)
    meta = {"generator": {"name": "unet", "num_downs": 5, "ngf": 4}, "in_channels": 3, "out_channels": 3, "stride": 32}
    model = save_checkpoint(tmp_path / "m.safetensors", {"generator": gen}, meta)
    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("RGB", (40, 40)).save(folder / "ok.png")
    (folder / "bad.jpg").write_bytes(b"\xff\xd8 nope")
    result = CliRunner().invoke(cli, ["translate", "--model", str(model), str(folder), str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "wrote 1 image(s)" in result.output and "bad.jpg" in result.output
    assert (tmp_path / "out" / "ok.png").is_file()
    missing = CliRunner().invoke(cli, ["translate", "--model", str(tmp_path / "none.safetensors"), str(folder), "o"])
    assert missing.exit_code == 2 and missing.output.startswith("error: model not found")
