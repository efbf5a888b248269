"""Translation at any size, both normalisation modes, and nothing lost on bad input."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import imgtrans
from imgtrans.core.checkpoint import save_checkpoint
from imgtrans.inference.engine import instance_statistics, pad_to_multiple, run_generator


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    gen = imgtrans.create_generator("unet_256", ngf=4)
    gen.train()(torch.randn(2, 3, 256, 256))  # non-trivial running statistics
    meta = {"recipe": "pix2pix", "generator": {"name": "unet_256", "ngf": 4}, "in_channels": 3,
            "out_channels": 3, "stride": 256, "direction": "AtoB", "norm_stats": "running"}
    return save_checkpoint(tmp_path_factory.mktemp("m") / "model.safetensors", {"generator": gen}, meta)


def _write(path: Path, w: int, h: int, mode: str = "RGB") -> Path:
    rng = np.random.default_rng(w * h)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = (rng.random((h, w, channels)) * 255).astype(np.uint8)
    Image.fromarray(pixels.squeeze(2) if channels == 1 else pixels, mode).save(path)
    return path


@pytest.mark.parametrize("w,h", [(300, 200), (1000, 700), (17, 9)])
def test_any_size_comes_back_at_its_size(model_path: Path, tmp_path: Path, w: int, h: int) -> None:
    src = _write(tmp_path / f"in_{w}x{h}.png", w, h)
    report = imgtrans.translate(model_path, src, tmp_path / "out")
    assert [p.name for p in report.written] == [f"in_{w}x{h}.png"] and not report.failed
    with Image.open(report.written[0]) as out:
        assert out.size == (w, h) and out.mode == "RGB"


def test_padding_reflects_and_crops_back() -> None:
    x = torch.arange(2 * 3 * 5, dtype=torch.float32).reshape(1, 2, 3, 5)
    padded, (left, right, top, bottom) = pad_to_multiple(x, 8)
    assert padded.shape[-2:] == (8, 8) and (left + right, top + bottom) == (3, 5)
    assert torch.equal(padded[..., top:top + 3, left:left + 5], x)
    tiny, _ = pad_to_multiple(torch.ones(1, 1, 1, 1), 256)  # 1 pixel cannot be reflected: replicated
    assert tiny.shape[-2:] == (256, 256) and bool((tiny == 1).all())


def test_instance_statistics_match_train_mode_batchnorm_per_image() -> None:
    """'instance' is the reference's test behaviour: train-mode batch norm on one image at a time."""
    torch.manual_seed(0)
    gen = imgtrans.create_generator("unet_256", ngf=4, dropout=False).eval()
    x = torch.randn(3, 3, 256, 256)
    with torch.no_grad():
        batched = run_generator(gen, x, stride=256, norm_stats="instance")
        gen.train()
        one_by_one = torch.cat([gen(x[i:i + 1]) for i in range(3)])
    assert torch.allclose(batched, one_by_one, atol=1e-5)
    running = run_generator(gen.eval(), x, stride=256, norm_stats="running")
    assert not torch.allclose(running, batched, atol=1e-3)
    with instance_statistics(gen):
        assert all("forward" in vars(m) for m in gen.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert not any("forward" in vars(m) for m in gen.modules()), "the patch is undone"


def test_batch_size_does_not_change_results(model_path: Path, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    for i in range(3):
        _write(tmp_path / "in" / f"{i}.png", 64, 48)
    imgtrans.translate(model_path, tmp_path / "in", tmp_path / "b1", batch_size=1)
    imgtrans.translate(model_path, tmp_path / "in", tmp_path / "b3", batch_size=3)
    for i in range(3):
        a = np.asarray(Image.open(tmp_path / "b1" / f"{i}.png")).astype(int)
        b = np.asarray(Image.open(tmp_path / "b3" / f"{i}.png")).astype(int)
        assert np.abs(a - b).max() <= 1


def test_bad_files_are_reported_and_the_rest_written(model_path: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    _write(folder / "good.png", 40, 30)
    _write(folder / "grey.png", 40, 30, "L")
    _write(folder / "alpha.png", 40, 30, "RGBA")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (folder / "notes.txt").write_text("not an image")
    report = imgtrans.translate(model_path, folder, tmp_path / "out")
    assert sorted(p.name for p in report.written) == ["alpha.png", "good.png", "grey.png"]
    assert [(p.name, "cannot read image" in why) for p, why in report.failed] == [("broken.png", True)]


def test_existing_outputs_are_not_overwritten(model_path: Path, tmp_path: Path) -> None:
    src = _write(tmp_path / "x.png", 32, 32)
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.png").write_bytes(b"precious")
    report = imgtrans.translate(model_path, src, out)
    assert (out / "x.png").read_bytes() == b"precious" and "--overwrite" in report.failed[0][1]
    report = imgtrans.translate(model_path, src, out, overwrite=True)
    assert report.written and Image.open(out / "x.png").size == (32, 32)


def test_tensor_in_tensor_out(model_path: Path) -> None:
    model = imgtrans.load_model(model_path)
    out = imgtrans.translate(model, torch.zeros(2, 3, 50, 70))
    assert out.shape == (2, 3, 50, 70)
