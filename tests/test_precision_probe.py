"""Verified ``auto`` precision: bf16 only where it keeps a model's outputs within 2 grey levels of fp32,
decided on the first batch, remembered per model file, an explicit --precision always obeyed.

This machine may have no native bf16, so the candidate ``auto`` weighs is forced to bf16 through the
test seam (``precision_probe.candidate_precision``); emulated bf16 on these tiny networks is fast.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import imgtrans
from imgtrans.cli import cli
from imgtrans.core.checkpoint import save_checkpoint
from imgtrans.inference import precision_probe, verdicts
from imgtrans.inference import model as model_module
from imgtrans.inference.precision_probe import AutoPrecision, choose_precision, grey_levels


def _model(folder: Path, *, std: float = 0.05, offset: float = 0.0, seed: int = 0) -> Path:
    """A tiny U-Net (stride 32).  With ``offset`` it is precision-sensitive yet computes the same in
    fp32: the last batch norm adds ``offset`` to every channel and the output convolution's weights
    on those channels sum to zero, so the offset cancels exactly in fp32 while bf16, rounding
    values near ``offset``, keeps an error of up to 8 grey levels (mean 1.6) at offset 30 (the
    cancellation of large activations that makes some real networks precision-sensitive)."""
    torch.manual_seed(seed)
    gen = imgtrans.create_generator("unet", num_downs=5, ngf=8)
    for m in gen.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            torch.nn.init.normal_(m.weight, 0.0, std)
    norms = [m for m in gen.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.momentum = None  # running statistics = those of the one batch below
    if offset:
        norms[-1].bias.data.fill_(offset)  # feeds channels 8..15 of the output convolution
        out = [m for m in gen.modules() if isinstance(m, torch.nn.ConvTranspose2d)][-1].weight.data[8:]
        out -= out.mean(0, keepdim=True)
    gen.train()(torch.rand(4, 3, 64, 64) * 2 - 1)
    meta = {"generator": {"name": "unet", "num_downs": 5, "ngf": 8}, "in_channels": 3, "out_channels": 3,
            "stride": 32, "norm_stats": "running"}
    folder.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(folder / "model.safetensors", {"generator": gen}, meta)


@pytest.fixture(scope="module")
def benign(tmp_path_factory) -> Path:
    return _model(tmp_path_factory.mktemp("benign"))


@pytest.fixture(scope="module")
def sensitive(tmp_path_factory) -> Path:
    return _model(tmp_path_factory.mktemp("sensitive"), offset=40.0)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch) -> Path:
    """A fresh IMGTRANS_HOME (so verdicts never leak between tests) and bf16 as auto's candidate."""
    monkeypatch.setenv("IMGTRANS_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(precision_probe, "candidate_precision", lambda device: "bf16")
    return tmp_path / "home"


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for i in range(3):
        path = tmp_path / "in" / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(path)
    return tmp_path / "in"


@pytest.fixture
def forwards(monkeypatch) -> list[str]:
    """The precision of every forward pass translate runs, in order."""
    calls: list[str] = []
    real = model_module.run_generator

    def spy(generator, images, **kwargs):
        calls.append(kwargs["precision"])
        return real(generator, images, **kwargs)

    monkeypatch.setattr(model_module, "run_generator", spy)  # every forward pass runs through TranslationModel.run
    return calls


def _pixels(folder: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) for p in sorted(folder.iterdir())]).astype(int)


def _verdicts(home: Path) -> dict:
    return json.loads((home / "precision_verdicts.json").read_text())["verdicts"]


def test_a_precision_sensitive_model_runs_fp32_and_says_why(sensitive: Path, inputs: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["translate", "--model", str(sensitive), str(inputs), str(tmp_path / "auto")])
    assert result.exit_code == 0, result.output
    assert "(fp32" in result.output
    line = " ".join(result.output.split())
    assert "bf16 would change outputs by up to" in line and "running fp32; --precision bf16 forces it" in line
    exact = imgtrans.translate(sensitive, inputs, tmp_path / "fp32", precision="fp32")
    assert np.array_equal(_pixels(tmp_path / "auto"), _pixels(tmp_path / "fp32")) and len(exact.written) == 3
    # the explicit choice is obeyed, and is as far off as auto measured
    forced = CliRunner().invoke(cli, ["translate", "--model", str(sensitive), str(inputs), str(tmp_path / "bf16"),
                                      "--precision", "bf16"])
    assert forced.exit_code == 0 and "(bf16" in forced.output and "precision:" not in forced.output
    assert np.abs(_pixels(tmp_path / "bf16") - _pixels(tmp_path / "fp32")).max() > precision_probe.MAX_GREY


def test_a_benign_model_runs_bf16(benign: Path, inputs: Path, tmp_path: Path, forwards: list[str]) -> None:
    report = imgtrans.translate(benign, inputs, tmp_path / "auto", batch_size=1)
    assert report.precision == "bf16" and "running bf16" in report.precision_note
    assert forwards == ["fp32", "bf16", "bf16", "bf16"]  # the first batch both ways, then bf16 only
    imgtrans.translate(benign, inputs, tmp_path / "bf16", precision="bf16")
    assert np.array_equal(_pixels(tmp_path / "auto"), _pixels(tmp_path / "bf16"))


def test_the_verdict_is_remembered_per_model_file(benign: Path, sensitive: Path, inputs: Path, tmp_path: Path,
                                                  home: Path, forwards: list[str]) -> None:
    imgtrans.translate(benign, inputs, tmp_path / "a")
    assert forwards.count("fp32") == 1
    [(key, verdict)] = _verdicts(home).items()
    assert key.startswith(verdicts.file_digest(benign)) and "|AtoB|cpu|bf16|running|torch-" in key
    assert verdict["precision"] == "bf16" and verdict["max"] <= 2

    forwards.clear()  # a later run: no probe
    report = imgtrans.translate(benign, inputs, tmp_path / "b")
    assert forwards == ["bf16"] and report.precision == "bf16" and "remembered in" in report.precision_note
    assert str(home) not in report.precision_note  # serve shows it in /v1/models: no server paths

    copy = tmp_path / "copy" / "same.safetensors"  # the same bytes elsewhere: the same verdict
    copy.parent.mkdir()
    shutil.copy(benign, copy)
    forwards.clear()
    imgtrans.translate(copy, inputs, tmp_path / "c")
    assert forwards == ["bf16"]

    forwards.clear()  # another file, or another normalisation mode: probed afresh
    assert imgtrans.translate(sensitive, inputs, tmp_path / "d").precision == "fp32"
    assert imgtrans.translate(benign, inputs, tmp_path / "e", norm_stats="instance").precision in ("bf16", "fp32")
    assert forwards.count("fp32") >= 2 and forwards.count("bf16") >= 2
    assert len(_verdicts(home)) == 3


def test_a_corrupt_cache_is_ignored_with_a_warning(benign: Path, inputs: Path, tmp_path: Path, home: Path,
                                                   capfd) -> None:
    home.mkdir(parents=True)
    (home / "precision_verdicts.json").write_text("{not json")
    report = imgtrans.translate(benign, inputs, tmp_path / "out")
    assert report.precision == "bf16" and len(report.written) == 3
    assert "ignoring the precision verdict cache" in capfd.readouterr().err
    assert list(_verdicts(home).values())[0]["precision"] == "bf16"  # rewritten whole

    (home / "precision_verdicts.json").write_text(json.dumps({"version": 1, "verdicts": [1], "files": {}}))
    assert imgtrans.translate(benign, inputs, tmp_path / "again").precision == "bf16"


def test_an_unwritable_cache_only_warns(benign: Path, inputs: Path, tmp_path: Path, monkeypatch, capfd) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("IMGTRANS_HOME", str(blocker))
    report = imgtrans.translate(benign, inputs, tmp_path / "out")
    assert report.precision == "bf16" and len(report.written) == 3
    assert "cannot write the precision verdict cache" in capfd.readouterr().err


def test_an_explicit_precision_is_obeyed_without_a_probe(sensitive: Path, inputs: Path, tmp_path: Path, home: Path,
                                                          forwards: list[str]) -> None:
    for precision in ("bf16", "bf16-mixed", "fp32"):
        report = imgtrans.translate(sensitive, inputs, tmp_path / precision, precision=precision)
        assert report.precision == precision.split("-")[0] and report.precision_note == ""
    assert forwards == ["bf16", "bf16", "fp32"]
    assert not (home / "precision_verdicts.json").exists()


def test_no_probe_where_there_is_no_faster_precision(benign: Path, inputs: Path, tmp_path: Path, home: Path,
                                                     forwards: list[str], monkeypatch) -> None:
    monkeypatch.setattr(precision_probe, "candidate_precision", lambda device: "fp32")
    report = imgtrans.translate(benign, inputs, tmp_path / "out")
    assert report.precision == "fp32" and report.precision_note == "" and forwards == ["fp32"]
    assert not home.exists()  # nothing hashed, nothing remembered


def test_a_failed_recheck_switches_to_fp32(sensitive: Path, inputs: Path, tmp_path: Path, home: Path,
                                           forwards: list[str], monkeypatch) -> None:
    """A remembered bf16 verdict that a later batch contradicts: fp32 from that batch on, remembered."""
    model = imgtrans.load_model(sensitive)
    key = verdicts.verdict_key(verdicts.file_digest(sensitive), "AtoB", torch.device("cpu"), "bf16", "running")
    verdicts.record(key, {"precision": "bf16", "candidate": "bf16", "max": 1, "mean": 0.1})
    monkeypatch.setattr(precision_probe, "RECHECK_EVERY", 2)
    report = imgtrans.translate(model, inputs, tmp_path / "out", batch_size=1)
    assert forwards == ["bf16", "fp32", "bf16", "fp32"]  # batch 2 checked and failed, batch 3 in fp32
    assert report.precision == "fp32" and "changed batch 2" in report.precision_note
    assert _verdicts(home)[key]["precision"] == "fp32"


def test_choose_precision_for_other_callers(benign: Path, sensitive: Path) -> None:
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    precision, reason = choose_precision(imgtrans.load_model(sensitive), x)
    assert precision == "fp32" and "--precision bf16 forces it" in reason
    assert choose_precision(imgtrans.load_model(benign), x)[0] == "bf16"
    assert choose_precision(imgtrans.load_model(sensitive), x, "bf16") == ("bf16", "bf16: as requested")
    # tensors through the library: fp32 unless asked, and "auto" is verified there too
    model = imgtrans.load_model(sensitive)
    assert torch.equal(imgtrans.translate(model, x), imgtrans.translate(model, x, precision="auto"))


def test_eval_auto_is_verified_per_model(sensitive: Path, benign: Path, aligned_dir: Path) -> None:
    def run(model: Path) -> dict:
        result = CliRunner().invoke(cli, ["eval", "--model", str(model), "--data", str(aligned_dir), "--json",
                                          "--precision", "auto", "--baseline", "identity"])
        assert result.exit_code == 0, result.output
        return {r["name"]: r["precision"] for r in json.loads(result.output)}

    assert run(sensitive) == {"model": "fp32", "identity": "fp32"}
    assert run(benign) == {"model": "bf16", "identity": "fp32"}


def test_grey_levels_are_those_of_the_written_images() -> None:
    a = torch.tensor([-1.0, 0.0, 0.5, 1.0])
    assert grey_levels(a, a + 0.001) == (0, 0.0)  # below half a level: the same 8-bit value
    assert grey_levels(a, a + 2 / 127.5) == (2, 1.5)  # +1 is clamped: unchanged there
    assert grey_levels(a, torch.tensor([-1.0, float("nan"), 0.5, 1.0]))[0] == 255


def test_auto_precision_refuses_an_unknown_name(benign: Path) -> None:
    with pytest.raises(imgtrans.util.errors.ImgtransError, match="fp8"):
        AutoPrecision(imgtrans.load_model(benign), "fp8")


def test_serve_verifies_auto_on_the_first_request(sensitive: Path, benign: Path) -> None:
    """``imgtrans serve`` decides ``auto`` like translate: on its first request, per model."""
    from imgtrans.serve.models import load_served

    served = load_served([f"sensitive={sensitive}", f"benign={benign}"])
    image = (np.random.default_rng(1).random((64, 64, 3)) * 255).astype(np.uint8)
    for name, expected in (("sensitive", "fp32"), ("benign", "bf16")):
        runner = served[name].direction(None)
        assert runner.auto.pending  # nothing decided before a real input arrives
        runner.translate([image])
        assert runner.precision == expected
        described = served[name].describe()["precision"]["AtoB"]
        assert described["running"] == expected and "grey level" in described["why"]


@pytest.mark.parametrize("kind", ["dev_zero", "fifo", "huge"])
def test_the_verdict_cache_is_read_only_as_a_small_regular_file(home: Path, kind: str, capsys) -> None:
    import os

    path = verdicts.verdicts_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "dev_zero":  # read whole, this grew a translate to 22 GB
        path.symlink_to("/dev/zero")
    elif kind == "fifo":  # read whole, this hung forever
        os.mkfifo(path)
    else:
        path.write_text(" " * (verdicts.MAX_BYTES + 1))
    assert verdicts.load() == {"version": verdicts.VERSION, "verdicts": {}, "files": {}}
    assert "ignoring the precision verdict cache" in capsys.readouterr().err


def test_the_verdict_cache_keeps_only_the_newest_entries(home: Path, monkeypatch) -> None:
    monkeypatch.setattr(verdicts, "MAX_ENTRIES", 3)
    for i in range(5):
        verdicts.record(f"key{i}", {"precision": "fp32", "candidate": "bf16", "max": 9, "mean": 1.0})
    verdicts.record("key2", {"precision": "bf16", "candidate": "bf16", "max": 1, "mean": 0.1})  # seen again: newest
    assert list(verdicts.load()["verdicts"]) == ["key3", "key4", "key2"]
