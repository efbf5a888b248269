"""One vocabulary across commands: --precision spellings, --device auto, eval's --precision and
--batch-size, and torchrun's --nproc-per-node."""
from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import imgtrans
from imgtrans.cli import cli
from imgtrans.core.checkpoint import save_checkpoint
from imgtrans.core.config import PRECISIONS, resolve
from imgtrans.inference import engine
from imgtrans.util.errors import ConfigError
from imgtrans.util.precision_names import SPELLINGS, inference_precision, training_precision

#: spelling -> (what train stores in run.precision, what translate and eval run)
EXPECTED = {
    "auto": ("auto", "auto"),
    "fp32": ("fp32", "fp32"), "32": ("fp32", "fp32"), "32-true": ("fp32", "fp32"),
    "bf16": ("bf16-mixed", "bf16"), "bf16-mixed": ("bf16-mixed", "bf16"),
    "fp16": ("fp16-mixed", "fp16"), "fp16-mixed": ("fp16-mixed", "fp16"), "16-mixed": ("fp16-mixed", "fp16"),
}


def _run(*args) -> object:
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    gen = imgtrans.create_generator("unet", num_downs=5, ngf=4)
    for m in gen.modules():  # weights large enough for the output to depend on the arithmetic
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            torch.nn.init.normal_(m.weight, 0.0, 0.1)
    meta = {"generator": {"name": "unet", "num_downs": 5, "ngf": 4}, "in_channels": 3, "out_channels": 3,
            "stride": 32, "norm_stats": "running"}
    return save_checkpoint(tmp_path_factory.mktemp("m") / "model.safetensors", {"generator": gen.eval()}, meta)


# ----------------------------------------------------------------------------- the names themselves

def test_every_spelling_has_one_meaning_per_command() -> None:
    assert set(SPELLINGS) == set(EXPECTED)
    for spelling, (train, infer) in EXPECTED.items():
        assert training_precision(spelling) == train and train in PRECISIONS
        assert inference_precision(spelling) == infer and inference_precision(spelling.upper()) == infer
        if infer != "auto":
            assert engine.resolve_precision(spelling, "cpu") == infer  # the Python API too


@pytest.mark.parametrize("bad", ["fp8", "bf16-true", "16", ""])
def test_an_unknown_precision_is_refused_by_name(bad: str) -> None:
    with pytest.raises(ConfigError, match=repr(bad)):
        inference_precision(bad)
    with pytest.raises(ConfigError, match="--precision"):
        engine.resolve_precision(bad)


# ----------------------------------------------------------------------------- train (resolution only)

def test_config_resolution_stores_one_spelling(registry) -> None:
    for spelling, (train, _) in EXPECTED.items():
        assert resolve("pix2pix", registry, [{"run": {"precision": spelling}}]).run.precision == train
    with pytest.raises(ConfigError, match="precision"):
        resolve("pix2pix", registry, [{"run": {"precision": "fp8"}}])


@pytest.fixture
def captured(monkeypatch) -> list:
    """``imgtrans train`` resolves its configuration and stops before training."""
    seen: list = []

    def fake_train(config, **kwargs):
        seen.append(config)
        return SimpleNamespace(history=[], steps=0, model_path="-", run_dir=Path(config.run.out or "."))

    monkeypatch.setattr("imgtrans.training.trainer.train", fake_train)
    return seen


@pytest.mark.parametrize("spelling", ["bf16", "bf16-mixed", "16-mixed", "fp16", "32-true", "32", "auto"])
def test_train_takes_every_spelling(spelling: str, captured: list, aligned_dir: Path, tmp_path: Path) -> None:
    result = _run("train", "pix2pix", "--data", aligned_dir, "--out", tmp_path / "run", "--precision", spelling)
    assert result.exit_code == 0, result.output
    assert captured[-1].run.precision == EXPECTED[spelling][0]


def test_train_set_and_config_file_take_the_spellings_too(captured: list, aligned_dir: Path, tmp_path: Path) -> None:
    assert _run("train", "pix2pix", "--data", aligned_dir, "--set", "run.precision=16-mixed").exit_code == 0
    assert captured[-1].run.precision == "fp16-mixed"
    toml = tmp_path / "c.toml"
    toml.write_text('[run]\nprecision = "bf16"\n')
    assert _run("train", "pix2pix", "--data", aligned_dir, "--config", toml).exit_code == 0
    assert captured[-1].run.precision == "bf16-mixed"
    assert 'precision = "bf16-mixed"' in captured[-1].to_toml()  # what config.toml of the run stores


def test_train_refuses_an_unknown_precision_in_one_line(captured: list, aligned_dir: Path) -> None:
    result = _run("train", "pix2pix", "--data", aligned_dir, "--precision", "fp8")
    assert result.exit_code == 2 and "'fp8' is not a precision" in result.output and not captured


# ----------------------------------------------------------------------------- translate

@pytest.mark.parametrize("spelling", ["bf16-mixed", "16-mixed", "32-true", "fp32", "bf16"])
def test_translate_takes_every_spelling(spelling: str, tiny_model: Path, tmp_path: Path) -> None:
    img = tmp_path / "in.png"
    Image.new("RGB", (40, 24), (10, 200, 30)).save(img)
    result = _run("translate", "--model", tiny_model, img, tmp_path / "out.png", "--precision", spelling)
    assert result.exit_code == 0, result.output
    assert f"({EXPECTED[spelling][1]}" in result.output and (tmp_path / "out.png").is_file()


# ----------------------------------------------------------------------------- --device

@pytest.mark.parametrize("command", ["translate", "eval"])
def test_device_defaults_to_auto(command: str) -> None:
    [device] = [p for p in cli.commands[command].params if p.name == "device"]
    assert device.default == "auto"


def test_train_device_defaults_to_auto(registry) -> None:
    assert resolve("pix2pix", registry, []).run.device == "auto"


# ----------------------------------------------------------------------------- eval

def _eval(model: Path, data: Path, *extra) -> dict:
    result = _run("eval", "--model", model, "--data", data, "--baseline", "untrained", "--json", *extra)
    assert result.exit_code == 0, result.output
    return {r["name"]: r for r in json.loads(result.output)}


def test_eval_precision_and_batch_size(tiny_model: Path, aligned_dir: Path, monkeypatch) -> None:
    from imgtrans.inference import model as model_module

    calls: list[tuple[str, int]] = []
    real = model_module.run_generator

    def spy(generator, images, **kwargs):
        calls.append((kwargs["precision"], images.shape[0]))
        return real(generator, images, **kwargs)

    monkeypatch.setattr(model_module, "run_generator", spy)
    batched = _eval(tiny_model, aligned_dir)
    assert calls == [("fp32", 2)] * 2  # the default: fp32, batched as translate batches (2 images, 2 networks)

    calls.clear()
    plain = _eval(tiny_model, aligned_dir, "--batch-size", "1")
    assert calls == [("fp32", 1)] * 4
    for name in plain:  # every image is scored on its own: the batch changes no figure
        for metric in ("l1", "psnr", "ssim"):
            assert batched[name][metric] == plain[name][metric]

    calls.clear()
    bf16 = _eval(tiny_model, aligned_dir, "--precision", "bf16-mixed", "--batch-size", "auto")
    assert calls == [("bf16", 2)] * 2
    assert bf16["model"]["l1"] == pytest.approx(plain["model"]["l1"], abs=0.02)


def test_eval_names_the_precision_it_ran(tiny_model: Path, aligned_dir: Path) -> None:
    result = _run("eval", "--model", tiny_model, "--data", aligned_dir, "--precision", "16-mixed", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "(fp16)" in result.output
    bad = _run("eval", "--model", tiny_model, "--data", aligned_dir, "--batch-size", "0")
    assert bad.exit_code == 2 and "'0'" in bad.output


# ----------------------------------------------------------------------------- --nproc

def test_nproc_per_node_is_accepted_and_named(monkeypatch, captured: list, aligned_dir: Path) -> None:
    assert _run("train", "pix2pix", "--data", aligned_dir, "--nproc-per-node", "1").exit_code == 0
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = _run("train", "pix2pix", "--data", aligned_dir, "--nproc", "2", "--device", "cpu")
    assert result.exit_code != 0 and "torchrun's --nproc-per-node" in result.output


# ----------------------------------------------------------------------------- readable tables

def _names(command: tuple[str, ...]) -> list[str]:
    from imgtrans.core.plugin_host import get_host
    from imgtrans.zoo.store import entries

    host = get_host()
    if command == ("zoo", "list"):
        return list(entries())
    if command == ("data", "list"):
        return list(host.catalog.names())
    if command == ("plugins",):
        return list(host.plugins)
    from imgtrans.core.registry import KINDS

    return [c.name for k in KINDS for c in host.registry.components(k)] + list(host.catalog.names())


@pytest.mark.parametrize("command", [("zoo", "list"), ("data", "list"), ("list",), ("plugins",)])
def test_names_are_never_truncated_in_80_columns(command: tuple[str, ...], monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # a terminal, as Rich sees it
    monkeypatch.setenv("NO_COLOR", "1")
    output = re.sub(r"\x1b\[[0-9;]*m", "", _run(*command).output)
    drawn = [line for line in output.splitlines() if "│" in line]
    assert max(map(len, drawn), default=0) <= 80  # a drawn table keeps the terminal's width (else: plain rows)
    names = _names(command)
    words = {w for line in output.splitlines() for w in line.replace("│", " ").split()}
    assert names and [n for n in names if n not in words] == []


def test_a_pipe_gets_whole_rows(monkeypatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    result = _run("zoo", "list")
    from imgtrans.zoo.store import entries

    for entry in entries().values():  # one line per model: grep finds its name and dataset together
        assert any({entry.name, entry.dataset} <= set(line.split()) for line in result.output.splitlines())
    assert not set("┃│━") & set(result.output)  # plain text, no box drawing


def test_data_info_json(aligned_dir: Path) -> None:
    result = _run("data", "info", aligned_dir, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["format"] == "aligned" and info["path"] == str(aligned_dir)
    splits = {s["name"]: s for s in info["splits"]}
    assert splits["test"]["count"] == 2  # A|B side by side: each image is twice as wide as high
    assert splits["test"]["sizes"] == [{"width": 128, "height": 64, "count": 2}]
    listed = json.loads(_run("data", "info", "facades", "--json").output)  # not cached: the catalogue's word
    assert listed["name"] == "facades" and listed["cached"] is False


def test_print_config_shows_the_resolved_settings_without_training(tmp_path) -> None:
    """`train --print-config`: the resolved TOML (recipe options, --set and defaults merged), no run."""
    from click.testing import CliRunner

    from imgtrans.cli import cli
    from imgtrans.core.config import tomllib  # the standard library's from 3.11, tomli on 3.10

    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", "cyclegan", "--data", "basemap_unpaired", "--lambda-a", "5",
                                      "--set", "generator_a.ngf=8", "--out", str(out), "--print-config"])
    assert result.exit_code == 0, result.output
    config = tomllib.loads(result.output)
    assert config["recipe"] == {"name": "cyclegan", "lambda_a": 5.0, "lambda_b": 10.0, "lambda_identity": 0.5,
                                "pool_size": 50}
    assert config["generator_a"]["ngf"] == 8 and config["data"]["source"] == "basemap_unpaired"
    assert not out.exists()
    bad = CliRunner().invoke(cli, ["train", "cyclegan", "--data", "x", "--set", "data.batch_size=0", "--print-config"])
    assert bad.exit_code == 2 and "batch_size" in bad.output
