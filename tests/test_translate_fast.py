"""Fast translation: precision, channels-last, batching by size, dropout seeds, tiling, and nothing
lost (skip / overwrite, recursive folders, formats, bad files, interruptions)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import imgtrans
from imgtrans.cli import cli
from imgtrans.core.checkpoint import save_checkpoint
from imgtrans.inference import engine, tiling
from imgtrans.inference import translate as translate_module


def _model(tmp_path_factory, num_downs: int, ngf: int = 4) -> Path:
    torch.manual_seed(num_downs)
    gen = imgtrans.create_generator("unet", num_downs=num_downs, ngf=ngf)
    for m in gen.modules():  # weights large enough for every level (and dropout) to show in the output
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            torch.nn.init.normal_(m.weight, 0.0, 0.1)
    gen.train()(torch.randn(4, 3, 2 ** num_downs, 2 ** num_downs))  # non-trivial running statistics
    meta = {"generator": {"name": "unet", "num_downs": num_downs, "ngf": ngf}, "in_channels": 3,
            "out_channels": 3, "stride": 2 ** num_downs, "norm_stats": "running"}
    return save_checkpoint(tmp_path_factory.mktemp("m") / "model.safetensors", {"generator": gen}, meta)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """A tiny U-Net with stride 32 and no dropout layer."""
    return _model(tmp_path_factory, 5, ngf=8)


@pytest.fixture(scope="module")
def with_dropout(tmp_path_factory) -> Path:
    """A tiny U-Net with stride 64 and one dropout layer."""
    return _model(tmp_path_factory, 6)


def _write(path: Path, w: int, h: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + w * h)
    base = rng.random((h // 4 + 1, w // 4 + 1, 3)) * 255  # smooth-ish content, like a photo
    Image.fromarray(base.astype(np.uint8)).resize((w, h), Image.BILINEAR).save(path)
    return path


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img).astype(int)


def _cli(*args) -> object:
    return CliRunner().invoke(cli, ["translate", *map(str, args)])


def test_bf16_is_within_a_few_grey_levels_of_fp32(small: Path, tmp_path: Path) -> None:
    for i in range(3):
        _write(tmp_path / "in" / f"{i}.png", 96, 64, seed=i)
    fp32 = imgtrans.translate(small, tmp_path / "in", tmp_path / "fp32", precision="fp32")
    bf16 = imgtrans.translate(small, tmp_path / "in", tmp_path / "bf16", precision="bf16")
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16") and len(bf16.written) == 3
    diffs = np.stack([np.abs(_pixels(a) - _pixels(b)) for a, b in zip(fp32.written, bf16.written)])
    print(f"bf16 vs fp32: max {diffs.max()}, mean {diffs.mean():.3f} grey levels")
    assert diffs.max() <= 6 and diffs.mean() < 1.0, (diffs.max(), diffs.mean())


def test_precision_default_follows_the_machine() -> None:
    assert engine.resolve_precision(None, "cpu") == ("bf16" if engine.cpu_has_fast_bf16() else "fp32")
    assert engine.default_precision("cuda") == "fp16" and engine.resolve_precision("fp32") == "fp32"
    with pytest.raises(imgtrans.util.errors.ImgtransError, match="--precision"):
        engine.resolve_precision("fp8")


def test_channels_last_does_not_change_fp32_results(small: Path) -> None:
    model = imgtrans.load_model(small)
    layout = [(p.stride(), p.dtype) for p in model.generator.parameters()]
    x = torch.rand(2, 3, 70, 50) * 2 - 1
    for norm in ("instance", "running"):
        plain = imgtrans.translate(model, x, norm_stats=norm, precision="fp32", channels_last=False)
        nhwc = imgtrans.translate(model, x, norm_stats=norm, precision="fp32", channels_last=True)
        assert (plain - nhwc).abs().max() <= 1e-4
    bf16 = imgtrans.translate(model, x, norm_stats="running", precision="bf16")
    assert bf16.dtype == torch.float32 and (bf16 - plain).abs().max() < 0.05
    assert [(p.stride(), p.dtype) for p in model.generator.parameters()] == layout, "the caller's model is untouched"


def test_the_default_fp32_path_stays_within_half_a_grey_level_of_the_plain_forward(small: Path) -> None:
    """What translate runs by default in fp32 (batched, channels-last where it helps) against the plain
    eager forward, one image at a time: any faster fp32 path must keep this (issue 17)."""
    model = imgtrans.load_model(small)
    x = torch.rand(5, 3, 64, 96) * 2 - 1
    with torch.no_grad():
        plain = torch.cat([model.generator(x[i:i + 1]) for i in range(len(x))])
    fast = engine.run_generator(model.generator, x, stride=model.stride, precision="fp32",
                                channels_last=engine.default_channels_last("fp32", "cpu"))
    assert (fast - plain).abs().max() * 127.5 <= 0.5


def test_batching_by_size_does_not_change_results(small: Path, tmp_path: Path) -> None:
    sizes = [(64, 48), (40, 40), (64, 48), (100, 30), (40, 40), (64, 48), (17, 9)]
    for i, (w, h) in enumerate(sizes):  # sizes interleaved in name order
        _write(tmp_path / "in" / f"{i}.png", w, h, seed=i)
    one = imgtrans.translate(small, tmp_path / "in", tmp_path / "b1", batch_size=1, precision="fp32")
    auto = imgtrans.translate(small, tmp_path / "in", tmp_path / "auto", precision="fp32")
    three = imgtrans.translate(small, tmp_path / "in", tmp_path / "b3", batch_size=3, precision="fp32")
    names = [f"{i}.png" for i in range(len(sizes))]
    assert [p.name for p in one.written] == [p.name for p in auto.written] == [p.name for p in three.written] == names
    for name, (w, h) in zip(names, sizes):
        a, b, c = (_pixels(tmp_path / d / name) for d in ("b1", "auto", "b3"))
        assert a.shape == (h, w, 3) and np.abs(a - b).max() <= 1 and np.abs(a - c).max() <= 1


def test_auto_batch_size_rule() -> None:
    assert translate_module.auto_batch_size(256, 256, 256) == 8
    assert translate_module.auto_batch_size(17, 9, 256) == 8  # padded to 256x256
    assert translate_module.auto_batch_size(64, 64, 32) == 64  # many small images, capped
    assert translate_module.auto_batch_size(2000, 3000, 256) == 1  # huge images one at a time
    assert translate_module.auto_batch_size(256, 256, 256, "cuda") == 32


def test_skip_existing_and_overwrite(small: Path, tmp_path: Path) -> None:
    for i in range(3):
        _write(tmp_path / "in" / f"{i}.png", 40, 30, seed=i)
    out = tmp_path / "out"
    out.mkdir()
    (out / "1.png").write_bytes(b"precious")
    first = _cli("--model", small, tmp_path / "in", out)
    assert first.exit_code == 1 and "1.png" in first.output and "--overwrite" in first.output
    assert (out / "1.png").read_bytes() == b"precious" and (out / "0.png").is_file() and (out / "2.png").is_file()
    resumed = _cli("--model", small, tmp_path / "in", out, "--skip-existing")
    assert resumed.exit_code == 0, resumed.output
    assert "wrote 0 image(s)" in resumed.output and "skipped 3 input(s)" in resumed.output
    assert (out / "1.png").read_bytes() == b"precious"
    both = _cli("--model", small, tmp_path / "in", out, "--skip-existing", "--overwrite")
    assert both.exit_code == 2 and "--overwrite and --skip-existing" in both.output
    replaced = _cli("--model", small, tmp_path / "in", out, "--overwrite")
    assert replaced.exit_code == 0 and "wrote 3 image(s)" in replaced.output
    assert _pixels(out / "1.png").shape == (30, 40, 3)
    report = imgtrans.translate(small, tmp_path / "in", out, skip_existing=True)
    assert [p.name for p in report.skipped] == ["0.png", "1.png", "2.png"] and not report.failed


def test_recursive_keeps_the_folder_structure(small: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    _write(src / "a.png", 32, 32)
    _write(src / "sub" / "b.png", 40, 24)
    _write(src / "sub" / "deeper" / "c.png", 24, 40)
    _write(src / ".hidden" / "d.png", 32, 32)
    flat = imgtrans.translate(small, src, tmp_path / "flat")
    assert [p.relative_to(tmp_path / "flat").as_posix() for p in flat.written] == ["a.png"]
    result = _cli("--model", small, src, src / "out", "--recursive")  # OUTPUT inside INPUTS is not an input
    assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(src / "out").as_posix() for p in (src / "out").rglob("*") if p.is_file())
    assert written == ["a.png", "sub/b.png", "sub/deeper/c.png"]
    assert _pixels(src / "out" / "sub" / "deeper" / "c.png").shape == (40, 24, 3)
    again = _cli("--model", small, src, src / "out", "--recursive", "--skip-existing")
    assert again.exit_code == 0 and "skipped 3" in again.output


@pytest.mark.parametrize("fmt,pil_format", [("jpg", "JPEG"), ("webp", "WEBP"), ("png", "PNG")])
def test_output_formats(small: Path, tmp_path: Path, fmt: str, pil_format: str) -> None:
    _write(tmp_path / "in" / "x.png", 48, 32)
    result = _cli("--model", small, tmp_path / "in", tmp_path / "out", "--format", fmt)
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "out" / f"x.{fmt}") as img:
        assert img.format == pil_format and img.size == (48, 32)
    single = imgtrans.translate(small, tmp_path / "in" / "x.png", tmp_path / f"single.{fmt}")
    assert single.written == [tmp_path / f"single.{fmt}"]
    with Image.open(single.written[0]) as img:
        assert img.format == pil_format


def test_format_must_match_a_single_output_file(small: Path, tmp_path: Path) -> None:
    src = _write(tmp_path / "x.png", 32, 32)
    result = _cli("--model", small, src, tmp_path / "y.png", "--format", "jpg")
    assert result.exit_code == 2 and "does not match" in result.output


def test_corrupt_file_among_good_ones(small: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    for name in ("a.png", "c.png", "d.png"):
        _write(folder / name, 40, 30)
    (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    result = _cli("--model", small, folder, tmp_path / "out")
    assert result.exit_code == 1
    assert "wrote 3 image(s)" in result.output and "1 input(s) failed" in result.output
    assert "cannot read image" in result.output and "b.png" in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png", "d.png"]


def test_dropout_is_seeded_per_image(with_dropout: Path, tmp_path: Path) -> None:
    for i in range(3):
        _write(tmp_path / "in" / f"{i}.png", 64, 64, seed=i)

    def run(name: str, **options) -> list[np.ndarray]:
        report = imgtrans.translate(with_dropout, tmp_path / "in", tmp_path / name, precision="fp32", **options)
        return [_pixels(p) for p in report.written]

    plain1, plain2 = run("plain1"), run("plain2")
    seed1, seed1_again, seed2 = run("s1", dropout=True, seed=1), run("s1b", dropout=True, seed=1), run("s2", dropout=True, seed=2)
    seed1_one_by_one = run("s1c", dropout=True, seed=1, batch_size=1)
    assert all(np.array_equal(a, b) for a, b in zip(plain1, plain2))
    assert all(np.array_equal(a, b) for a, b in zip(seed1, seed1_again))
    assert all(np.abs(a - b).max() <= 1 for a, b in zip(seed1, seed1_one_by_one)), "batching changes nothing"
    assert all(not np.array_equal(a, b) for a, b in zip(seed1, seed2))
    assert all(not np.array_equal(a, b) for a, b in zip(seed1, plain1))
    cli_run = [_cli("--model", with_dropout, tmp_path / "in", tmp_path / f"c{k}", "--dropout", "--seed", 7,
                    "--precision", "fp32") for k in (1, 2)]
    assert all(r.exit_code == 0 for r in cli_run)
    assert np.array_equal(_pixels(tmp_path / "c1" / "0.png"), _pixels(tmp_path / "c2" / "0.png"))


def test_large_images_are_tiled(small: Path, tmp_path: Path, monkeypatch) -> None:
    calls = []
    real = tiling.translate_tiled

    def spy(run, pixels, **kwargs):
        calls.append((pixels.shape, kwargs))
        return real(run, pixels, **kwargs)

    monkeypatch.setattr(tiling, "translate_tiled", spy)
    _write(tmp_path / "in" / "big.png", 600, 300)
    _write(tmp_path / "in" / "small.png", 200, 100)
    result = _cli("--model", small, tmp_path / "in", tmp_path / "out", "--tile", 256, "--tile-overlap", 64)
    assert result.exit_code == 0, result.output
    assert [c[0] for c in calls] == [(300, 600, 3)]
    assert calls[0][1]["tile"] == 256 and calls[0][1]["overlap"] == 64 and calls[0][1]["out_channels"] == 3
    assert _pixels(tmp_path / "out" / "big.png").shape == (300, 600, 3)
    assert _pixels(tmp_path / "out" / "small.png").shape == (100, 200, 3)
    whole = imgtrans.translate(small, tmp_path / "in" / "big.png", tmp_path / "whole.png", tile=0)
    assert len(calls) == 1 and _pixels(whole.written[0]).shape == (300, 600, 3)


def test_interrupt_leaves_only_complete_files(small: Path, tmp_path: Path, monkeypatch) -> None:
    for i in range(12):
        _write(tmp_path / "in" / f"{i:02d}.png", 48, 48, seed=i)
    real_write = Path.write_bytes
    writes = []

    def write_bytes(self, data):  # images are encoded in memory, then written (atomically) with this
        writes.append(1)
        if len(writes) > 2:  # the third write dies half way through, as if Ctrl-C hit it
            real_write(self, data[: len(data) // 2])
            raise KeyboardInterrupt
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        imgtrans.translate(small, tmp_path / "in", out, batch_size=4)
    monkeypatch.setattr(Path, "write_bytes", real_write)
    files = sorted(p.name for p in out.iterdir())
    assert 2 <= len(files) < 12 and not any(name.startswith(".") for name in files), files
    for name in files:
        assert _pixels(out / name).shape == (48, 48, 3)  # complete, readable
    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    writes.clear()
    result = _cli("--model", small, tmp_path / "in", tmp_path / "out2")
    assert result.exit_code == 130 and "--skip-existing" in result.output
    assert not any(p.name.startswith(".") for p in (tmp_path / "out2").iterdir())


def test_compile_falls_back_with_one_line(small: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    def unavailable(*args, **kwargs):
        raise RuntimeError("torch.compile is not supported here\nsecond line")

    monkeypatch.setattr(torch, "compile", unavailable)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    model = imgtrans.load_model(small)
    out = imgtrans.translate(model, x, compile=True)
    assert torch.allclose(out, imgtrans.translate(model, x), atol=1e-5)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--compile is unavailable" in err[0] and "second line" not in err[0]


def test_bad_batch_size_is_a_usage_error(small: Path, tmp_path: Path) -> None:
    src = _write(tmp_path / "x.png", 32, 32)
    for bad in ("0", "many"):
        result = _cli("--model", small, src, tmp_path / "out", "--batch-size", bad)
        assert result.exit_code == 2 and "--batch-size" in result.output
