"""translate and eval under hostile and clumsy use (issue 10): inputs are never overwritten,
colliding outputs are refused before any work, memory is bounded by pixels whatever
--batch-size says, and every refusal is one line (no traceback) that comes before the work."""
from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers import write_aligned
from PIL import Image

import imgtrans
from imgtrans.cli import cli
from imgtrans.core.checkpoint import save_checkpoint
from imgtrans.inference import translate as translate_module
from imgtrans.util.errors import ImgtransError


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A tiny U-Net (stride 32) saved as a self-describing checkpoint."""
    torch.manual_seed(0)
    gen = imgtrans.create_generator("unet", num_downs=5, ngf=4)
    meta = {"generator": {"name": "unet", "num_downs": 5, "ngf": 4}, "in_channels": 3, "out_channels": 3,
            "stride": 32, "direction": "AtoB", "norm_stats": "running"}
    return save_checkpoint(tmp_path_factory.mktemp("m") / "model.safetensors", {"generator": gen}, meta)


def _image(path: Path, colour: tuple[int, int, int], size: int = 40) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path)
    return path


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _run(*args) -> object:
    return CliRunner().invoke(cli, [str(a) for a in args])


def _one_line_error(result, status: int = 2) -> str:
    """The error is one line (eval's progress lines in a log, before it, are not part of it)."""
    lines = [line for line in result.output.strip().splitlines() if not line.startswith("eval: ")]
    assert result.exit_code == status, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, (RuntimeError, OSError))
    return lines[0]


# ----------------------------------------------------------------------------- inputs are never overwritten

def test_translate_in_place_with_colliding_names_changes_nothing(model: Path, tmp_path: Path) -> None:
    """Issue 10 #2: `translate IN IN --overwrite` with x.jpg and x.png replaced the input x.png."""
    folder = tmp_path / "in"
    _image(folder / "x.jpg", (255, 0, 0))
    _image(folder / "x.png", (0, 0, 255))
    _image(folder / "y.png", (0, 255, 0))
    before = _snapshot(folder)
    line = _one_line_error(_run("translate", "--model", model, folder, folder, "--overwrite"))
    assert "x.jpg" in line and "x.png" in line and "nothing was written" in line
    assert _snapshot(folder) == before


def test_colliding_output_names_are_refused_before_any_work(model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    _image(folder / "a.png", (1, 2, 3))
    _image(folder / "x.jpg", (255, 0, 0))
    _image(folder / "x.png", (0, 0, 255))
    out = tmp_path / "out"
    line = _one_line_error(_run("translate", "--model", model, folder, out))
    assert f"{folder / 'x.jpg'} and {folder / 'x.png'} would both be written to {out / 'x.png'}" in line
    assert "different OUTPUT" in line
    assert not out.exists(), "not even a.png, which collides with nothing, is written"
    with pytest.raises(ImgtransError, match="would both be written"):
        imgtrans.translate(model, folder, out, format="jpg")


def test_an_output_that_is_an_input_is_refused_in_every_mode(model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    _image(folder / "y.png", (0, 255, 0))
    _image(folder / "sub" / "z.png", (0, 0, 9))
    before = _snapshot(folder)
    for extra in (["--overwrite"], [], ["--skip-existing"], ["--overwrite", "--recursive"]):
        line = _one_line_error(_run("translate", "--model", model, folder, folder, *extra))
        assert "would replace itself" in line and "inputs are never overwritten" in line and "--format" in line
    single = _one_line_error(_run("translate", "--model", model, folder / "y.png", folder / "y.png", "--overwrite"))
    assert "would replace itself" in single
    assert _snapshot(folder) == before
    # a format no input has is fine: OUTPUT may be INPUTS as long as no input is replaced
    result = _run("translate", "--model", model, folder, folder, "--format", "webp")
    assert result.exit_code == 0, result.output
    assert {k: v for k, v in _snapshot(folder).items() if not k.endswith(".webp")} == before
    assert (folder / "y.webp").is_file()


# ----------------------------------------------------------------------------- memory: pixels, not counts

def test_explicit_batch_size_keeps_the_pixel_bound() -> None:
    """Issue 10 #11: with --batch-size N the decode queue was bounded by count only (2N images,
    however large); now both queues are bounded by pixels, the same as with 'auto'."""
    auto_items, auto_pixels = translate_module.in_flight_limits("auto", "cpu", 32)
    items, pixels = translate_module.in_flight_limits(4, "cpu", 32)
    assert (auto_items, items) == (16, 8)
    assert pixels == auto_pixels == 2 * 8 * 256 * 256, "the bound does not depend on --batch-size 4"
    assert translate_module.in_flight_limits(64, "cpu")[1] == 2 * 64 * 256 * 256  # grows with N, not image size
    assert translate_module.in_flight_limits("auto", "cuda")[1] == 2 * 32 * 256 * 256


def test_huge_images_are_decoded_one_at_a_time_with_an_explicit_batch_size(model: Path, tmp_path: Path,
                                                                           monkeypatch) -> None:
    """Eight inputs whose headers say 8000x8000, --batch-size 4: at most one waits decoded ahead."""
    for i in range(8):
        _image(tmp_path / "in" / f"{i}.png", (i, i, i), size=8)
    monkeypatch.setattr(translate_module, "_peek_size", lambda path: (8000, 8000))
    monkeypatch.setattr(translate_module, "load_image", lambda path, channels: np.zeros((8, 8, 3), np.uint8))
    real, queued, peak = translate_module._prefetch, [0], [0]

    class CountingPool:
        def __init__(self, pool):
            self.pool = pool

        def submit(self, fn, *args):
            queued[0] += 1
            peak[0] = max(peak[0], queued[0])
            return self.pool.submit(fn, *args)

    def spy(pool, *args):
        for item in real(CountingPool(pool), *args):
            queued[0] -= 1
            yield item

    monkeypatch.setattr(translate_module, "_prefetch", spy)
    report = imgtrans.translate(model, tmp_path / "in", tmp_path / "out", batch_size=4)
    assert len(report.written) == 8 and not report.failed
    assert peak[0] == 1, f"{peak[0]} images of 8000x8000 were decoded ahead at once"


def test_pending_writes_are_bounded_by_pixels() -> None:
    class Lazy(Future):  # finishes only when waited for, like a write that is slower than the network
        def result(self, timeout=None):
            if not self.done():
                self.set_result(None)
            return super().result(timeout)

    class Pool:
        def submit(self, fn, *args):
            return Lazy()

    done: list[tuple[object, str | None]] = []
    items, pixels = translate_module.in_flight_limits(4, "cpu")
    writer = translate_module._Writer(Pool(), "png", items, pixels, done=lambda job, error: done.append((job, error)))
    huge = np.broadcast_to(np.zeros(1, np.uint8), (8000, 8000, 3))  # no memory behind it
    peak = 0
    for i in range(6):
        writer.submit(SimpleNamespace(dst=Path(f"huge{i}.png")), huge)
        peak = max(peak, len(writer.pending))
    writer.finish()
    assert peak == 1 and len(done) == 6 and all(error is None for _, error in done)
    small = np.zeros((256, 256, 3), np.uint8)
    for i in range(20):
        writer.submit(SimpleNamespace(dst=Path(f"small{i}.png")), small)
        peak = max(peak, len(writer.pending))
    assert peak == items, "small outputs still queue up to the count limit"


# ----------------------------------------------------------------------------- one-line errors, before the work

@pytest.mark.parametrize("command", ["translate", "eval"])
def test_bad_or_missing_device_is_one_line(command: str, model: Path, tmp_path: Path, monkeypatch) -> None:
    """Issue 10 #12: --device banana and --device cuda without a GPU were tracebacks."""
    src = _image(tmp_path / "x.png", (5, 5, 5))
    data = write_aligned(tmp_path / "pairs", "test", count=1)
    args = (["translate", "--model", model, src, tmp_path / "out"] if command == "translate"
            else ["eval", "--model", model, "--data", data])
    assert "unknown device 'banana'" in _one_line_error(_run(*args, "--device", "banana"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "no CUDA device is available" in _one_line_error(_run(*args, "--device", "cuda"))
    assert not (tmp_path / "out").exists()


def test_unwritable_output_is_found_before_the_model_is_loaded(model: Path, tmp_path: Path, monkeypatch) -> None:
    """Issue 10 #12/#13: an unwritable OUTPUT surfaced only after every image was computed."""
    _image(tmp_path / "in" / "a.png", (1, 1, 1))
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    import imgtrans.inference.model as model_module

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded before OUTPUT was checked")

    monkeypatch.setattr(model_module, "load_model", no_loading)
    monkeypatch.setattr(translate_module, "load_model", no_loading)
    line = _one_line_error(_run("translate", "--model", model, tmp_path / "in", blocker / "out"))
    assert line == f"error: cannot write OUTPUT {blocker / 'out'}: {blocker} is a file, not a folder"
    line = _one_line_error(_run("translate", "--model", model, tmp_path / "in" / "a.png", blocker / "a.png"))
    assert "cannot write OUTPUT" in line and str(blocker) in line
    with pytest.raises(ImgtransError, match="cannot write OUTPUT"):
        imgtrans.translate(model, tmp_path / "in", blocker)  # an existing file where a folder is needed


def test_folder_of_unsupported_files_is_refused(model: Path, tmp_path: Path) -> None:
    """Issue 10 #13: a folder of GIFs said 'wrote 0 image(s)' and exited 0."""
    folder = tmp_path / "gifs"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8)).save(folder / f"{i}.gif")
    (folder / "notes.txt").write_text("x")
    line = _one_line_error(_run("translate", "--model", model, folder, tmp_path / "out"))
    assert "no supported images" in line and "4 file(s) ignored (.gif, .txt)" in line
    assert ".png" in line and ".jpg" in line and ".tif" in line
    assert not (tmp_path / "out").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no images in" in _one_line_error(_run("translate", "--model", model, empty, tmp_path / "out", "-r"))


def test_single_output_with_an_image_extension_is_a_file(model: Path, tmp_path: Path) -> None:
    """Issue 10 #13: `translate x.png x.tif` made a folder x.tif."""
    src = _image(tmp_path / "x.png", (10, 200, 30))
    result = _run("translate", "--model", model, src, tmp_path / "x.tif")
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "x.tif") as img:
        assert img.format == "TIFF" and img.size == (40, 40)
    line = _one_line_error(_run("translate", "--model", model, src, tmp_path / "x.bmp"))
    assert ".bmp is not an output format" in line and ".tif" in line
    assert not (tmp_path / "x.bmp").exists()
    (tmp_path / "folder.png").mkdir()  # an existing folder stays a folder, whatever its name
    report = imgtrans.translate(model, src, tmp_path / "folder.png")
    assert report.written == [tmp_path / "folder.png" / "x.png"]


def test_failure_lines_name_the_input_once(model: Path, tmp_path: Path, monkeypatch) -> None:
    """Issue 10 #13: failure lines read `x.png: x.png: 40x40 pixels exceeds ...`."""
    _image(tmp_path / "in" / "x.png", (1, 2, 3))
    (tmp_path / "in" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    monkeypatch.setenv("IMGTRANS_MAX_IMAGE_PIXELS", "100")
    result = _run("translate", "--model", model, tmp_path / "in", tmp_path / "out")
    assert result.exit_code == 1
    lines = [line.strip() for line in result.output.splitlines() if "x.png" in line or "b.png" in line]
    assert len(lines) == 2, result.output
    for line in lines:
        assert line.count(str(tmp_path / "in")) == 1, line
    assert any("exceeds the limit of 100" in line for line in lines)
    assert any("cannot read image" in line for line in lines)


def test_model_directory_is_named_as_such(model: Path, tmp_path: Path) -> None:
    """Issue 10 #13: `--model RUN_DIR` said 'checkpoint not found'; issue 24: a run directory
    stands for its model.safetensors (tests/test_model_sources.py), and any other directory is
    named as one."""
    line = _one_line_error(_run("eval", "--model", tmp_path, "--data", tmp_path))
    assert "is a directory without a model" in line and str(tmp_path / "model.safetensors") in line


# ----------------------------------------------------------------------------- eval

def _unpaired(root: Path) -> Path:
    """A CycleGAN layout whose A and B images share no names: B is no ground truth for A."""
    for folder in ("trainA", "trainB", "testA", "testB"):
        for i in range(2):
            _image(root / folder / f"{folder[-1].lower()}{i}.png", (40 * i, 0, 0), size=64)
    return root


def test_eval_refuses_paired_metrics_on_unpaired_data(model: Path, tmp_path: Path) -> None:
    """Issue 10 #9: eval on an unpaired set scored each input against a random target.  Unpaired
    sets are scored by set metrics (FID, KID) now; per-image metrics on them stay refused."""
    line = _one_line_error(_run("eval", "--model", model, "--data", _unpaired(tmp_path / "u"),
                                "--metric", "ssim", "--out", tmp_path / "out"))
    assert "is unpaired" in line and "ssim would score against unrelated targets" in line
    assert not (tmp_path / "out").exists()


def test_eval_refuses_data_without_targets(model: Path, tmp_path: Path, monkeypatch) -> None:
    """A dataset of single images (format 'single') has no target to score against."""
    flat = tmp_path / "flat"
    for i in range(2):
        _image(flat / f"{i}.png", (0, 40 * i, 0), size=64)
    import imgtrans.metrics.evaluate as evaluate_module

    # detection may already call such a folder 'single' (then the patch is unused: raising=False)
    monkeypatch.setattr(evaluate_module, "detect_format", lambda root, formats: "single", raising=False)
    line = _one_line_error(_run("eval", "--model", model, "--data", flat))
    assert "eval needs aligned ground truth" in line and "'single'" in line


def test_eval_refuses_a_flat_folder_of_ordinary_images(model: Path, tmp_path: Path) -> None:
    """Issue 10 #9: a flat folder of 64x64 images was read as A|B pairs (32x64 outputs)."""
    flat = tmp_path / "flat"
    for i in range(2):
        _image(flat / f"{i}.png", (0, 40 * i, 0), size=64)
    result = _run("eval", "--model", model, "--data", flat, "--out", tmp_path / "out")
    line = _one_line_error(result)
    assert "aligned" in line
    assert not (tmp_path / "out").exists()


def test_eval_outputs_are_checked_before_any_work(model: Path, tmp_path: Path, monkeypatch) -> None:
    data = write_aligned(tmp_path / "pairs", "test", count=1)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    import imgtrans.metrics.evaluate as evaluate_module

    def no_scoring(*args, **kwargs):
        raise AssertionError("eval computed before checking its outputs")

    monkeypatch.setattr(evaluate_module, "evaluate", no_scoring)
    line = _one_line_error(_run("eval", "--model", model, "--data", data, "--out", blocker / "out"))
    assert line == f"error: cannot write --out {blocker / 'out'}: {blocker} is a file, not a folder"
    line = _one_line_error(_run("eval", "--model", model, "--data", data, "--contact-sheet", blocker / "s.png"))
    assert line.startswith(f"error: cannot write --contact-sheet {blocker / 's.png'}")


def test_eval_write_failure_is_one_line(model: Path, tmp_path: Path, monkeypatch) -> None:
    data = write_aligned(tmp_path / "pairs", "test", count=1)
    import imgtrans.metrics.evaluate as evaluate_module

    def disk_full(pixels, path, **options):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(evaluate_module, "save_image", disk_full)
    line = _one_line_error(_run("eval", "--model", model, "--data", data, "--contact-sheet", tmp_path / "s.png"))
    assert line == f"error: cannot write --contact-sheet {tmp_path / 's.png'}: No space left on device"


@pytest.mark.parametrize("case", ["unknown zoo name", "missing file", "every output exists"])
def test_refusals_come_before_torch_is_imported(tmp_path: Path, case: str) -> None:
    """An existing output folder was refused only after the model loaded and the precision probe ran
    ("wrote 0 image(s)", 8 s idle); an unknown zoo name took 5 s of start-up.  Both are one line
    now, before torch is even imported."""
    import subprocess
    import sys

    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    out.mkdir()
    for name in ("a.png", "b.png"):
        Image.new("RGB", (8, 8)).save(inputs / name)
        (out / name).write_bytes(b"an earlier output")
    model, message = {"unknown zoo name": ("zoo:mpas_a2b", "unknown zoo model 'mpas_a2b'. Did you mean 'maps_a2b'?"),
                      "missing file": (str(tmp_path / "no.safetensors"), "neither a file nor a zoo model"),
                      "every output exists": ("zoo:maps_a2b", "every output already exists in")}[case]
    code = ("import sys\nfrom imgtrans.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as exc:\n"
            "    print('exit', exc.code, 'torch' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code, "translate", "--model", model, str(inputs), str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "exit 2 False", (result.stdout, result.stderr)
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert (out / "a.png").read_bytes() == b"an earlier output"


def test_a_log_gets_whole_lines_not_paths_wrapped_mid_line(model: Path, tmp_path: Path) -> None:
    """With stderr a file or pipe, rich wrapped at 80 columns and cut long paths in two."""
    import subprocess
    import sys

    _image(tmp_path / "in" / "a.png", (10, 20, 30))
    out = tmp_path / ("a_rather_long_folder_name_that_makes_the_line_longer_than_eighty_columns" * 2) / "out"
    result = subprocess.run([sys.executable, "-m", "imgtrans", "translate", "--model", str(model),
                             str(tmp_path / "in"), str(out)], capture_output=True, text=True, timeout=300,
                            env={**__import__("os").environ, "COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    assert any(line.startswith("wrote 1 image(s) to ") and str(out) in line for line in result.stderr.splitlines()), \
        result.stderr
