"""``imgtrans export``: ONNX, TorchScript and torch.export files of the U-Net and ResNet generators
that match the eager fp32 model within 1 grey level at odd sizes, and ``translate --model X.onnx``."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import imgtrans
from imgtrans.cli import cli
from imgtrans.core.checkpoint import save_checkpoint
from imgtrans.inference import export as export_module
from imgtrans.inference.engine import pad_to_multiple, run_generator
from imgtrans.inference.export_formats import METADATA_KEY, open_exported, read_exported_metadata
from imgtrans.inference.export_graph import pad_index, reflect_rounds
from imgtrans.util.errors import ImgtransError, RunError

HAVE_ONNX = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxscript", "onnxruntime"))
needs_onnx = pytest.mark.skipif(not HAVE_ONNX, reason="the [onnx] extra (onnx, onnxscript, onnxruntime) is not installed")
FORMATS = [pytest.param("onnx", marks=needs_onnx), "torchscript", "pt2"]
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt", "pt2": ".pt2"}
GREY = 1 / 127.5  # one grey level in [-1, 1]


def _model(folder: Path, name: str, **args) -> Path:
    """A tiny generator with weights large enough for every level to show, and (for batch norm)
    running statistics unlike any one image's."""
    torch.manual_seed(len(name))
    gen = imgtrans.create_generator(name, ngf=4, **args)
    for m in gen.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            torch.nn.init.normal_(m.weight, 0.0, 0.1)
    gen.train()(torch.randn(2, 3, gen.stride * 2, gen.stride * 2) * 2)
    meta = {"generator": {"name": name, "ngf": 4, **args}, "in_channels": 3, "out_channels": 3,
            "stride": gen.stride, "norm_stats": "running"}
    return save_checkpoint(folder / f"{name}.safetensors", {"generator": gen.eval()}, meta)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    return {"unet_256": _model(folder, "unet_256"), "resnet_9blocks": _model(folder, "resnet_9blocks")}


@pytest.fixture(scope="module")
def exported(models, tmp_path_factory):
    """Each (generator, format) exported once for the module."""
    folder, done = tmp_path_factory.mktemp("exported"), {}

    def get(name: str, fmt: str) -> tuple[Path, export_module.ExportReport]:
        if (name, fmt) not in done:
            out = folder / f"{name}{SUFFIX[fmt]}"
            done[name, fmt] = out, imgtrans.export(models[name], out)
        return done[name, fmt]

    return get


def test_graph_padding_is_the_engines_padding() -> None:
    """Reflection repeated for sides shorter than the padding, replicate for 1-pixel sides."""
    for stride in (1, 4, 7, 32, 256):
        rounds = reflect_rounds(stride)
        for n in [*range(1, 2 * stride + 3, max(1, stride // 64)), 1, 2, 3]:
            line = torch.arange(n, dtype=torch.float32).expand(1, 1, 2, n)
            want, (left, *_) = pad_to_multiple(line, stride)
            got, before = pad_index(n, stride, rounds, torch.device("cpu"))
            assert torch.equal(got, want[0, 0, 0].long()) and before == left, (stride, n)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", ["unet_256", "resnet_9blocks"])
def test_round_trip_within_one_grey_level_at_odd_sizes(exported, models, name: str, fmt: str) -> None:
    path, report = exported(name, fmt)
    assert report.format == fmt and report.files == [path] and report.max_grey_levels <= 1.0
    assert [s[2:] for s in report.shapes] == [(67, 93), (259 if name == "unet_256" else 131, 45)]
    model = imgtrans.load_model(models[name])
    run = open_exported(path)
    for shape in [(3, 3, 45, 77), (1, 3, 301, 9)]:  # sizes of its own, not the verification's
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(sum(shape))) * 2 - 1
        want = run_generator(model.generator, x, stride=model.stride)
        got = run(x)
        assert got.shape == want.shape and (got - want).abs().max() <= GREY
    meta = read_exported_metadata(path)
    assert (meta["direction"], meta["norm_stats"], meta["stride"], meta["exported_as"]) == \
        ("AtoB", "running", model.stride, fmt)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary left


def test_instance_statistics_are_baked_in(models, tmp_path: Path) -> None:
    model = imgtrans.load_model(models["unet_256"])
    imgtrans.export(model, tmp_path / "i.pt", norm_stats="instance")
    x = torch.rand(2, 3, 40, 50, generator=torch.Generator().manual_seed(1)) * 2 - 1
    got = open_exported(tmp_path / "i.pt")(x)
    instance = run_generator(model.generator, x, stride=256, norm_stats="instance")
    running = run_generator(model.generator, x, stride=256, norm_stats="running")
    assert (got - instance).abs().max() <= GREY < (got - running).abs().max()
    assert read_exported_metadata(tmp_path / "i.pt")["norm_stats"] == "instance"


@pytest.mark.slow
@needs_onnx
def test_two_way_model_exports_the_direction_asked_for(tmp_path: Path) -> None:
    nets, directions = {}, {}
    for seed, (direction, slot) in enumerate([("AtoB", "generator_a"), ("BtoA", "generator_b")]):
        torch.manual_seed(seed)
        nets[slot] = imgtrans.create_generator("resnet_6blocks", ngf=4).eval()
        directions[direction] = {"network": slot, "generator": {"name": "resnet_6blocks", "ngf": 4},
                                 "in_channels": 3, "out_channels": 3, "stride": 4, "norm_stats": "running"}
    src = save_checkpoint(tmp_path / "cyclegan.safetensors", nets, {"recipe": "cyclegan", "directions": directions})
    result = CliRunner().invoke(cli, ["export", "-m", str(src), "-o", str(tmp_path / "b2a.onnx"), "--direction", "BtoA",
                                      "--opset", "18"])
    assert result.exit_code == 0, result.output
    assert "BtoA" in result.output and "grey levels" in result.output
    import onnx

    assert [o.version for o in onnx.load(str(tmp_path / "b2a.onnx")).opset_import if o.domain == ""] == [18]
    x = torch.rand(1, 3, 33, 21) * 2 - 1
    got = open_exported(tmp_path / "b2a.onnx")(x)
    b2a, a2b = (run_generator(nets[slot], x, stride=4) for slot in ("generator_b", "generator_a"))
    assert (got - b2a).abs().max() <= GREY < (got - a2b).abs().max()
    loaded = imgtrans.load_model(str(tmp_path / "b2a.onnx"))
    assert (loaded.direction, loaded.directions, loaded.metadata["recipe"]) == ("BtoA", ["BtoA"], "cyclegan")
    with pytest.raises(ImgtransError, match="exported for BtoA only, not AtoB; export the model again"):
        imgtrans.load_model(str(tmp_path / "b2a.onnx"), direction="AtoB")


def _images(folder: Path) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(37, 53), (37, 53), (64, 64), (300, 70), (5, 9)]):
        Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    return folder


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img).astype(np.int16)


@needs_onnx
@pytest.mark.parametrize("name", ["unet_256", "resnet_9blocks"])
def test_translate_from_onnx_equals_translate_from_safetensors(exported, models, name: str, tmp_path: Path) -> None:
    onnx_file, _ = exported(name, "onnx")
    images = _images(tmp_path / "in")
    runner = CliRunner()
    for model, out in ((models[name], "eager"), (onnx_file, "onnx")):  # 300x70 goes in 128-pixel tiles
        result = runner.invoke(cli, ["translate", "-m", str(model), str(images), str(tmp_path / out),
                                     "--tile", "128", "--tile-overlap", "32", "--precision", "fp32", "--batch-size", "2"])
        assert result.exit_code == 0, result.output
    for src in sorted(images.iterdir()):
        a, b = _read(tmp_path / "eager" / src.name), _read(tmp_path / "onnx" / src.name)
        assert a.shape == b.shape == _read(src).shape and np.abs(a - b).max() <= 1, src.name
    loaded = imgtrans.load_model(str(onnx_file))
    assert (loaded.device.type, loaded.stride, loaded.in_channels, loaded.recommended_norm_stats) == \
        ("cpu", loaded.generator.stride, 3, "running")
    x = torch.rand(2, 3, 19, 23) * 2 - 1  # the tensor API too, at the default precision
    assert (imgtrans.translate(loaded, x) - imgtrans.translate(models[name], x)).abs().max() <= GREY


@needs_onnx
def test_options_an_onnx_model_cannot_honour_are_refused_before_any_work(exported, tmp_path: Path) -> None:
    onnx_file, _ = exported("resnet_9blocks", "onnx")
    images = _images(tmp_path / "in")
    for extra, message in [(["--precision", "bf16"], "runs in fp32 through onnxruntime"),
                           (["--norm-stats", "instance"], "was exported with --norm-stats running baked in"),
                           (["--dropout"], "has no dropout"),
                           (["--compile"], "--compile applies to PyTorch models"),
                           (["--direction", "BtoA"], "exported for AtoB only")]:
        out = tmp_path / f"out{len(extra[0])}"
        result = CliRunner().invoke(cli, ["translate", "-m", str(onnx_file), str(images), str(out), *extra])
        assert result.exit_code == 2 and message in result.output, (extra, result.output)
        assert result.output.strip().splitlines()[-1].startswith("error: ") and not out.exists()


@needs_onnx
def test_unreadable_onnx_files_are_one_line_errors(exported, tmp_path: Path) -> None:
    import onnx

    onnx_file, _ = exported("resnet_9blocks", "onnx")
    (tmp_path / "cut.onnx").write_bytes(onnx_file.read_bytes()[:1000])
    plain = onnx.load(str(onnx_file))
    del plain.metadata_props[:]
    onnx.save(plain, str(tmp_path / "plain.onnx"))
    hostile = onnx.load(str(onnx_file))  # the sweep's meta_stride.onnx: it allocated 11.7 GB, then a traceback
    for prop in hostile.metadata_props:
        if prop.key == METADATA_KEY:
            prop.value = json.dumps({**json.loads(prop.value), "stride": 2 ** 30})
    onnx.save(hostile, str(tmp_path / "meta_stride.onnx"))
    images = _images(tmp_path / "in")
    for name, message in [("cut.onnx", "is not a readable onnx file"), ("plain.onnx", "has no imgtrans metadata"),
                          ("missing.onnx", "model not found"),
                          ("meta_stride.onnx", "metadata stride=1073741824 is not an integer from 1 to 4096")]:
        result = CliRunner().invoke(cli, ["translate", "-m", str(tmp_path / name), str(images), str(tmp_path / "o")])
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
        assert message in result.output


def test_export_refusals_are_one_line(models, tmp_path: Path) -> None:
    src = str(models["resnet_9blocks"])
    (tmp_path / "taken.pt").write_bytes(b"keep me")
    cases = [(["-o", str(tmp_path / "x.pt"), "--dropout"], "--dropout cannot be exported"),
             (["-o", str(tmp_path / "x.bin")], "cannot tell the format of"),
             (["-o", str(tmp_path / "x.pt"), "--opset", "17"], "--opset applies to --format onnx only"),
             (["-o", str(tmp_path / "taken.pt")], "exists (pass --overwrite"),
             (["-o", str(tmp_path / "x.pt"), "--direction", "BtoA"], "translates AtoB only"),
             (["-o", src, "--format", "pt2", "--overwrite"], "is the model being exported")]
    for args, message in cases:
        result = CliRunner().invoke(cli, ["export", "-m", src, *args])
        assert result.exit_code == 2, (args, result.output)
        assert result.output.strip().splitlines() == [result.output.strip()] and message in result.output, args
    assert (tmp_path / "taken.pt").read_bytes() == b"keep me" and not (tmp_path / "x.pt").exists()
    # an exported file cannot be exported again (it failed deep in torch: ".numpy() is not supported ...")
    (tmp_path / "a.onnx").write_bytes(b"an exported graph")
    result = CliRunner().invoke(cli, ["export", "-m", str(tmp_path / "a.onnx"), "-o", str(tmp_path / "x.pt")])
    assert result.exit_code == 2 and "is an exported model and cannot be exported again" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "x.pt").exists()


def test_a_file_that_does_not_match_the_model_is_not_left_behind(models, tmp_path: Path, monkeypatch) -> None:
    def off_by_two_grey_levels(path, fmt=None, **kwargs):
        run = open_exported(path, fmt, **kwargs)
        return lambda x: run(x) + 2 * GREY

    monkeypatch.setattr("imgtrans.inference.export_formats.open_exported", off_by_two_grey_levels)
    (tmp_path / "old.pt").write_bytes(b"previous export")
    with pytest.raises(RunError, match=r"differs from the eager fp32 model by 2 grey levels .* was not written"):
        imgtrans.export(models["resnet_9blocks"], tmp_path / "old.pt", overwrite=True)
    with pytest.raises(RunError, match="was not written"):
        imgtrans.export(models["resnet_9blocks"], tmp_path / "new" / "folder" / "x.pt2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.pt"]  # no temporary file, no new folder
    assert (tmp_path / "old.pt").read_bytes() == b"previous export"  # the file it would have replaced is kept


@needs_onnx
def test_an_opset_torch_cannot_write_is_refused(tmp_path: Path) -> None:
    """torch.onnx falls back to its lowest opset when it cannot convert (with a logged traceback):
    the file would silently not be the opset asked for."""
    gen = imgtrans.create_generator("unet", num_downs=5, ngf=4).eval()
    meta = {"generator": {"name": "unet", "num_downs": 5, "ngf": 4}, "in_channels": 3, "out_channels": 3, "stride": 32}
    src = save_checkpoint(tmp_path / "m.safetensors", {"generator": gen}, meta)
    result = CliRunner().invoke(cli, ["export", "-m", str(src), "-o", str(tmp_path / "m.onnx"), "--opset", "11"])
    assert result.exit_code == 2 and "--opset 11 is not available" in result.output
    assert result.output.strip().splitlines()[-1].startswith("error: ") and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


@needs_onnx
def test_auto_precision_means_fp32_for_an_onnx_model(exported, tmp_path: Path, monkeypatch) -> None:
    """Even where auto would weigh bf16 (a CPU with native bf16, simulated), with no probe."""
    monkeypatch.setattr("imgtrans.inference.precision_probe.candidate_precision", lambda device: "bf16")
    onnx_file, _ = exported("resnet_9blocks", "onnx")
    report = imgtrans.translate(str(onnx_file), _images(tmp_path / "in"), tmp_path / "out")
    assert report.precision == "fp32" and len(report.written) == 5 and not report.failed


@needs_onnx
def test_serve_runs_an_onnx_model_like_its_safetensors(exported, models) -> None:
    """`imgtrans serve --model FILE.onnx`: its one direction, the same pixels as the eager model."""
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    from imgtrans.serve.models import load_served

    onnx_file, _ = exported("resnet_9blocks", "onnx")
    served = load_served([f"onnx={onnx_file}", f"eager={models['resnet_9blocks']}"], precision="fp32")
    assert served["onnx"].describe()["directions"] == ["AtoB"]
    image = (np.random.default_rng(3).random((37, 53, 3)) * 255).astype(np.uint8)
    a, b = (served[n].direction(None).translate([image])[0].astype(np.int16) for n in ("onnx", "eager"))
    assert a.shape == b.shape == image.shape and np.abs(a - b).max() <= 1
