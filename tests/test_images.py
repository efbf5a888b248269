"""Images as they come: odd modes, bit depths, orientation, broken files, bombs; skipping them in training."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import TINY, write_aligned
from PIL import Image

import imgtrans
from imgtrans.core.config import resolve
from imgtrans.data import images
from imgtrans.data.images import load_image, set_max_pixels
from imgtrans.data.robust import SKIPPED_KEY, SkipBadItems, Skipped, collate_skipping
from imgtrans.util.errors import DataError

RED, TEAL = (200, 10, 30), (20, 150, 140)


def _luma(rgb) -> int:
    """ITU-R 601, exactly as Pillow's convert("L")."""
    r, g, b = rgb
    return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16


def _both(path: Path) -> tuple[np.ndarray, np.ndarray]:
    rgb, grey = load_image(path, 3), load_image(path, 1)
    assert rgb.dtype == grey.dtype == np.uint8 and rgb.shape[2] == 3 and grey.shape[2] == 1
    assert rgb.shape[:2] == grey.shape[:2]
    return rgb, grey


@pytest.fixture
def pil_only(monkeypatch):
    monkeypatch.setattr(images, "FAST_DECODE", False)


@pytest.fixture
def fast_calls(monkeypatch) -> list[bool]:
    """Records, per fast-path attempt, whether torchvision decoded the file."""
    calls: list[bool] = []
    original = images._decode_torchvision

    def spy(*args):
        out = original(*args)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(images, "_decode_torchvision", spy)
    return calls


# ----------------------------------------------------------------------------- the channel rule

@pytest.mark.parametrize("fast", [True, False], ids=["fast", "pil"])
def test_greyscale_is_replicated_and_alpha_is_dropped(tmp_path: Path, monkeypatch, fast: bool) -> None:
    monkeypatch.setattr(images, "FAST_DECODE", fast)
    grey = np.array([[0, 77, 255], [10, 20, 30]], dtype=np.uint8)
    Image.fromarray(grey, "L").save(tmp_path / "l.png")
    Image.fromarray(np.dstack([grey, np.zeros_like(grey)]), "LA").save(tmp_path / "la.png")
    for name in ("l.png", "la.png"):  # LA: alpha 0 everywhere, the grey values survive
        rgb, one = _both(tmp_path / name)
        assert np.array_equal(one[:, :, 0], grey) and all(np.array_equal(rgb[:, :, c], grey) for c in range(3))

    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0], rgba[0, 1], rgba[1, 0], rgba[1, 1] = (*RED, 0), (*TEAL, 255), (*RED, 128), (0, 0, 0, 0)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    rgb, one = _both(tmp_path / "rgba.png")
    assert np.array_equal(rgb, rgba[:, :, :3]), "colours kept as stored, whatever the alpha (no compositing)"
    assert one[0, 0, 0] == _luma(RED) and one[0, 1, 0] == _luma(TEAL)


def test_palette_with_transparency_uses_the_palette_colours(tmp_path: Path) -> None:
    img = Image.new("P", (3, 1))
    img.putpalette([*RED, *TEAL, 0, 0, 255] + [0] * 759)
    img.putdata([0, 1, 2])
    img.save(tmp_path / "p.png", transparency=0)  # index 0 (red) is fully transparent
    with Image.open(tmp_path / "p.png") as check:
        assert check.mode == "P" and "transparency" in check.info
    rgb, one = _both(tmp_path / "p.png")
    assert rgb[0].tolist() == [list(RED), list(TEAL), [0, 0, 255]]
    assert one[0, :, 0].tolist() == [_luma(RED), _luma(TEAL), _luma((0, 0, 255))]


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_is_scaled_by_range(tmp_path: Path, suffix: str) -> None:
    values = np.array([[0, 128, 129, 257 * 100, 65535]], dtype=np.uint16)
    path = tmp_path / f"deep{suffix}"
    Image.fromarray(values).save(path)
    with Image.open(path) as check:
        assert check.mode.startswith("I;16")
    rgb, one = _both(path)
    expected = [0, 0, 1, 100, 255]  # round(v / 257)
    assert one[0, :, 0].tolist() == expected and rgb[0, :, 1].tolist() == expected


def test_float_images_outside_0_1_are_refused(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), "F").save(tmp_path / "ok.tif")
    assert load_image(tmp_path / "ok.tif", 1)[0, :, 0].tolist() == [0, 128, 255]
    Image.fromarray(np.array([[0.0, 300.0]], dtype=np.float32), "F").save(tmp_path / "heights.tif")
    with pytest.raises(DataError, match=r"heights\.tif.*\[0, 1\]"):
        load_image(tmp_path / "heights.tif", 3)


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    Image.new("RGB", (16, 16), RED).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    with Image.open(tmp_path / "cmyk.jpg") as check:
        assert check.mode == "CMYK"
    rgb, one = _both(tmp_path / "cmyk.jpg")
    assert np.abs(rgb.astype(int) - RED).max() <= 3
    assert abs(int(one[8, 8, 0]) - _luma(RED)) <= 3


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_exif_orientation_is_applied(tmp_path: Path, suffix: str) -> None:
    pixels = np.zeros((32, 48, 3), dtype=np.uint8)  # 48 wide, 32 high; a red block at the top left
    pixels[:16, :16] = RED
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / f"phone{suffix}"
    Image.fromarray(pixels).save(path, exif=exif, **({"quality": 95} if suffix == ".jpg" else {}))
    rgb, one = _both(path)
    upright = np.rot90(pixels, k=-1)  # clockwise: now 32 wide, 48 high, the block at the top right
    assert rgb.shape == (48, 32, 3)
    assert np.abs(rgb.astype(int) - upright).mean() <= 2  # JPEG blurs the edges a little
    assert np.abs(rgb[4, 28].astype(int) - RED).max() <= 8 and rgb[4, 4].max() <= 8
    assert abs(int(one[4, 28, 0]) - _luma(RED)) <= 8 and one[4, 4, 0] <= 8


def test_multi_page_tiff_gives_the_first_page(tmp_path: Path) -> None:
    pages = [Image.new("RGB", (8, 8), RED), Image.new("RGB", (8, 8), TEAL)]
    pages[0].save(tmp_path / "pages.tif", save_all=True, append_images=pages[1:])
    assert load_image(tmp_path / "pages.tif", 3)[0, 0].tolist() == list(RED)


# ----------------------------------------------------------------------------- broken files

@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_files_are_refused_not_padded(tmp_path: Path, monkeypatch, suffix: str) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / f"cut{suffix}"
    Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    for channels in (1, 3):
        with pytest.raises(DataError, match=rf"{path.name}.*truncated"):
            load_image(path, channels)
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # set by some other library: still refused
    with pytest.raises(DataError, match="truncated"):
        load_image(path, 3)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True


def test_non_images_are_refused_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(DataError, match=r"notes\.png: not an image file"):
        load_image(tmp_path / "notes.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.jpg"):
        load_image(tmp_path / "empty.jpg")
    with pytest.raises(DataError, match=r"missing\.png"):
        load_image(tmp_path / "missing.png")


def test_pixel_limit(tmp_path: Path, monkeypatch) -> None:
    Image.new("RGB", (20, 20)).save(tmp_path / "big.png")
    Image.new("RGB", (20, 20)).save(tmp_path / "big.tif")
    monkeypatch.delenv(images.MAX_PIXELS_ENV, raising=False)
    assert images.max_pixels() == images.MAX_PIXELS == 178_956_970
    previous = set_max_pixels(100)
    try:
        for name in ("big.png", "big.tif"):  # the fast path and Pillow's
            with pytest.raises(DataError, match=rf"{name}: 20x20 pixels exceeds the limit of 100 .*"
                                                r"IMGTRANS_MAX_IMAGE_PIXELS"):
                load_image(tmp_path / name)
    finally:
        set_max_pixels(previous)
    assert load_image(tmp_path / "big.png").shape == (20, 20, 3)

    monkeypatch.setenv(images.MAX_PIXELS_ENV, "399")
    with pytest.raises(DataError, match="limit of 399"):
        load_image(tmp_path / "big.png")
    monkeypatch.setenv(images.MAX_PIXELS_ENV, "400")
    assert load_image(tmp_path / "big.png").shape == (20, 20, 3)
    monkeypatch.setenv(images.MAX_PIXELS_ENV, "0")  # no limit
    assert images.max_pixels() == 0

    # Our limit replaces Pillow's: raising ours above Pillow's works, and Pillow's is left as it was.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    monkeypatch.delenv(images.MAX_PIXELS_ENV)
    assert load_image(tmp_path / "big.tif").shape == (20, 20, 3)
    assert Image.MAX_IMAGE_PIXELS == 100


# ----------------------------------------------------------------------------- the fast path

@pytest.mark.parametrize("suffix", [".jpg"])
def test_torchvision_fast_path_matches_pillow(tmp_path: Path, monkeypatch, fast_calls, suffix: str) -> None:
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:96, 0:128]
    pixels = np.clip(np.dstack([x * 2, y * 2, (x + y) % 256]) + rng.normal(0, 10, (96, 128, 3)), 0, 255)
    colour, grey = tmp_path / f"photo{suffix}", tmp_path / f"grey{suffix}"
    Image.fromarray(pixels.astype(np.uint8)).save(colour)
    Image.fromarray(pixels.astype(np.uint8)).convert("L").save(grey)
    for path, channels in ((colour, 3), (colour, 1), (grey, 1), (grey, 3)):
        monkeypatch.setattr(images, "FAST_DECODE", True)
        fast = load_image(path, channels)
        monkeypatch.setattr(images, "FAST_DECODE", False)
        slow = load_image(path, channels)
        assert fast.shape == slow.shape and np.abs(fast.astype(int) - slow.astype(int)).max() <= 1
    # torchvision decodes all but the colour file for a 1-channel model (Pillow's luma is as fast there)
    assert fast_calls == [True, False, True, True]


def test_fast_path_leaves_odd_files_to_pillow(tmp_path: Path, fast_calls) -> None:
    Image.new("RGB", (8, 8), RED).convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.new("P", (8, 8)).save(tmp_path / "p.png", transparency=0)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (8, 4)).save(tmp_path / "turned.jpg", exif=exif)
    for name in ("cmyk.jpg", "p.png", "turned.jpg"):
        load_image(tmp_path / name)
    assert fast_calls == [False, False]  # the PNG never reaches torchvision (next test)


def _png_with_a_bad_data_check(path: Path) -> Path:
    """A PNG whose compressed pixels fail zlib's check while every chunk CRC is right (so the header
    and CRCs read fine and only decoding finds it)."""
    import struct
    import zlib

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 128, 3), dtype=np.uint8)).save(buffer, "PNG")
    raw = bytearray(buffer.getvalue())
    at = raw.index(b"IDAT")
    length = struct.unpack(">I", raw[at - 4:at])[0]
    raw[at + 4 + length - 2] ^= 0xFF  # inside the zlib stream's adler32
    raw[at + 4 + length:at + 8 + length] = struct.pack(">I", zlib.crc32(bytes(raw[at:at + 4 + length])))
    path.write_bytes(bytes(raw))
    return path


def test_a_png_with_a_bad_data_check_is_an_error_not_a_crash(tmp_path: Path, fast_calls) -> None:
    """torchvision 0.29's libpng decoder crashed the process (SIGSEGV) on this file, so a served
    request could take the server down: PNGs are decoded by Pillow, which says what is wrong."""
    import subprocess
    import sys

    bad = _png_with_a_bad_data_check(tmp_path / "bad.png")
    code = ("from imgtrans.data.images import load_image, decode_image\n"
            "for read in (lambda: load_image(%r), lambda: decode_image(open(%r, 'rb').read())):\n"
            "    try:\n        read()\n    except Exception as exc:\n        print(type(exc).__name__, exc)\n") % (
        str(bad), str(bad))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-500:]  # -11 was the crash
    assert result.stdout.count("DataError cannot read image") == 2, result.stdout


# ----------------------------------------------------------------------------- skipping in training

def test_collate_and_receive_count_items_that_failed_in_workers() -> None:
    item = {"A": torch.zeros(1, 2, 2), "B": torch.zeros(1, 2, 2), "path": "x"}
    seen: list[str] = []
    wrapper = SkipBadItems([item], warn=seen.append)
    batch = collate_skipping([item, Skipped(3, "cannot read image bad.png: truncated"), None])
    assert batch["A"].shape == (1, 1, 2, 2) and len(batch[SKIPPED_KEY]) == 1
    assert set(wrapper.receive(batch)) == {"A", "B", "path"}
    everything_bad = collate_skipping([Skipped(3, "cannot read image bad.png: truncated")])
    assert wrapper.receive(everything_bad) is None
    assert collate_skipping([None]) is None
    assert wrapper.skipped == {3: "cannot read image bad.png: truncated"}
    assert seen == ["skipping cannot read image bad.png: truncated"], "one warning per item, however often seen"
    with pytest.raises(DataError, match="bad.png"):
        SkipBadItems([item], strict=True).receive(collate_skipping([Skipped(3, "bad.png: x", True)]))


def _messy_folder(root: Path) -> Path:
    """4 good training pairs, 2 unreadable files and a note; a clean val split (previews come from it, so
    the bad files are only ever met by the DataLoader, in its workers when there are any)."""
    write_aligned(root, "train", count=4)
    write_aligned(root, "val", count=1, seed=1)
    folder = root / "train"
    data = (folder / "pair_00.png").read_bytes()
    (folder / "pair_01_cut.png").write_bytes(data[: len(data) // 2])
    (folder / "pair_02_text.jpg").write_text("this is not a photo")
    (folder / "notes.txt").write_text("not listed: not an image suffix")
    return root


def _config(registry, source: Path, out: Path, epochs: int = 1, **data):
    layers = [TINY, {"data": {"source": str(source), "load_size": 64, "crop_size": 64, "batch_size": 6, **data},
                     "optim": {"epochs": epochs, "epochs_decay": 0},
                     "run": {"out": str(out), "progress": False, "log_every": 2, "device": "cpu"}}]
    return resolve("pix2pix", registry, layers)


@pytest.mark.parametrize("workers,epochs", [(0, 1), (2, 2)])
def test_training_skips_unreadable_files(registry, tmp_path: Path, capsys, workers: int, epochs: int) -> None:
    """Worker processes are new copies each epoch: still one warning per file, and the right count."""
    root = _messy_folder(tmp_path / "messy")
    result = imgtrans.train(_config(registry, root, tmp_path / "run", epochs, num_workers=workers))
    err = capsys.readouterr().err
    assert result.skipped == 2 and result.steps == epochs  # one batch (the 4 good pairs) per epoch
    for name in ("pair_01_cut.png", "pair_02_text.jpg"):
        lines = [line for line in err.splitlines() if name in line]
        assert len(lines) == 1 and lines[0].startswith("imgtrans: warning: skipping"), err
    assert "truncated" in err and "not an image file" in err and "notes.txt" not in err
    assert "imgtrans: warning: skipped 2 unreadable file(s)" in err
    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["skipped_files"] == 2 and records[-2]["epoch"] == epochs and records[-2]["step"] == epochs
    assert result.model_path.is_file()


def test_strict_training_stops_at_the_first_unreadable_file(registry, tmp_path: Path) -> None:
    root = _messy_folder(tmp_path / "messy")
    with pytest.raises(DataError, match=r"pair_01_cut\.png|pair_02_text\.jpg"):
        imgtrans.train(_config(registry, root, tmp_path / "run", strict=True))


def test_strict_is_a_train_option() -> None:
    from imgtrans.cli.train_cmd import OPTION_KEYS, train_command

    assert OPTION_KEYS["strict"] == ("data", "strict")
    assert any(p.name == "strict" and "unreadable" in p.help for p in train_command.params)


def test_paired_folders_of_different_sizes_are_skipped_with_the_reason(tmp_path: Path) -> None:
    from imgtrans.data.formats import PairedFoldersDataset

    for side, size in (("A", (16, 16)), ("B", (16, 16))):
        (tmp_path / side).mkdir()
        Image.new("RGB", size).save(tmp_path / side / "same.png")
    Image.new("RGB", (16, 16)).save(tmp_path / "A" / "odd.png")
    Image.new("RGB", (20, 16)).save(tmp_path / "B" / "odd.png")
    seen: list[str] = []
    data = SkipBadItems(PairedFoldersDataset(tmp_path, "train"), warn=seen.append)
    assert data[0] is None and data[1]["A"].shape == (3, 16, 16)
    assert len(seen) == 1 and "odd.png" in seen[0] and "same size" in seen[0]
