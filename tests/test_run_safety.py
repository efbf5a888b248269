"""The run directory under hostile and clumsy use (issue 10): nothing lost, nothing mixed, no
tracebacks, and true messages when a run stops."""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import TINY, records, write_aligned
from safetensors import safe_open
from safetensors.torch import save_file

import imgtrans
from imgtrans.cli import cli
from imgtrans.core.config import resolve
from imgtrans.training.resume import resume_config
from imgtrans.training.rundir import LOCK_NAME, RunLock
from imgtrans.util.errors import ConfigError
from imgtrans.util.outputmarks import MARK_NAME, write_mark


def _config(registry, data: Path | str, out: Path | str, **optim):
    layers = [TINY, {"data": {"source": str(data), "load_size": 64, "crop_size": 64},
                     "optim": {"epochs": 1, "epochs_decay": 0, **optim},
                     "run": {"out": str(out), "progress": False, "log_every": 1, "checkpoint_every_steps": 1}}]
    return resolve("pix2pix", registry, layers)


def _toml(registry, tmp_path: Path, data: Path, **optim) -> Path:
    toml = tmp_path / "tiny.toml"
    toml.write_text(_config(registry, data, "", **optim).to_toml())
    return toml


def _cli(*args) -> tuple[int, list[str]]:
    """Exit status and output lines, less the informational ones (device line, warnings)."""
    result = CliRunner().invoke(cli, ["train", *map(str, args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.output.strip().splitlines()
    return result.exit_code, [line for line in lines if not line.startswith(("training on ", "imgtrans: warning"))]


# -- 1. --overwrite deletes only an imgtrans run -------------------------------------------------

def test_overwrite_refuses_a_folder_that_is_not_a_run(registry, tmp_path: Path) -> None:
    data = write_aligned(tmp_path / "data", count=2)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(ConfigError, match="refusing to --overwrite .*no config.toml"):
        imgtrans.train(_config(registry, data, out, max_steps=1), overwrite=True)
    assert (out / "thesis.tex").read_text() == "years of work"

    # a real run with one foreign file in it is refused too, and keeps everything
    run = tmp_path / "run"
    imgtrans.train(_config(registry, data, run, max_steps=1))
    (run / "previews" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="previews/notes.txt, which imgtrans did not write"):
        imgtrans.train(_config(registry, data, run, max_steps=1), overwrite=True)
    assert (run / "previews" / "notes.txt").is_file() and (run / "model.safetensors").is_file()

    # a folder with every name a run has (config.toml naming a recipe, metrics.jsonl, photos under
    # test/) is still a user's folder: only the run's own mark makes it one imgtrans wrote
    lookalike = tmp_path / "lookalike"
    shutil.copytree(run, lookalike)
    (lookalike / MARK_NAME).unlink()
    (lookalike / "test").mkdir()
    (lookalike / "test" / "holiday.png").write_bytes(b"a photo")
    with pytest.raises(ConfigError, match=f"refusing to --overwrite .*no {MARK_NAME}"):
        imgtrans.train(_config(registry, data, lookalike, max_steps=1), overwrite=True)
    assert (lookalike / "test" / "holiday.png").read_bytes() == b"a photo"

    # an eval's output folder without eval's mark is not eval's either
    (run / "previews" / "notes.txt").unlink()
    (run / "test").mkdir()
    (run / "test" / "pair_00.png").write_bytes(b"png")
    with pytest.raises(ConfigError, match="it holds 'test', which imgtrans did not write"):
        imgtrans.train(_config(registry, data, run, max_steps=1), overwrite=True)

    # with it (and a killed run's temporary file) the run is replaced
    write_mark(run / "test", "eval-out")
    (run / ".metrics.jsonl-abcd1234.jsonl").write_text("")
    result = imgtrans.train(_config(registry, data, run, max_steps=2), overwrite=True)
    assert result.steps == 2 and not (run / "test").exists() and not (run / ".metrics.jsonl-abcd1234.jsonl").exists()


@pytest.mark.parametrize("where", ["is", "holds"])
def test_overwrite_never_deletes_the_training_data(registry, tmp_path: Path, where: str) -> None:
    if where == "is":  # --data D --out D --overwrite
        data = out = write_aligned(tmp_path / "data", count=2)
    else:  # the data inside a folder that otherwise looks like a run
        out = tmp_path / "run"
        data = write_aligned(out / "checkpoints", count=2)
        (out / "config.toml").write_text('[recipe]\nname = "pix2pix"\n')
    code, lines = _cli("pix2pix", "--config", _toml(registry, tmp_path, data), "--data", data, "--out", out,
                       "--overwrite", "--quiet")
    assert code == 2 and len(lines) == 1, lines
    assert "refusing to --overwrite" in lines[0] and "training data" in lines[0], lines
    assert len(list((data / "train").glob("*.png"))) == 2 and not (out / LOCK_NAME).exists()


# -- 3. one run per directory ---------------------------------------------------------------------

def test_a_second_run_on_a_locked_directory_refuses_naming_the_first(registry, tmp_path: Path) -> None:
    data = write_aligned(tmp_path / "data", count=2)
    run = tmp_path / "run"
    run.mkdir()
    first = RunLock(run).acquire()  # as a running `imgtrans train` holds it
    try:
        code, lines = _cli("pix2pix", "--config", _toml(registry, tmp_path, data), "--out", run, "--quiet")
        assert code == 1 and len(lines) == 1 and f"(PID {os.getpid()})" in lines[0], lines
        assert "in use by another `imgtrans train`" in lines[0]
        assert sorted(p.name for p in run.iterdir()) == [LOCK_NAME], "the refused run wrote nothing"
    finally:
        first.release()

    imgtrans.train(_config(registry, data, run, max_steps=1))
    first = RunLock(run).acquire()
    try:  # --resume takes the lock too
        code, lines = _cli("--resume", run, "--max-steps", "2", "--quiet")
        assert code == 1 and len(lines) == 1 and f"(PID {os.getpid()})" in lines[0], lines
        assert "max_steps = 1" in (run / "config.toml").read_text()
    finally:
        first.release()
    code, lines = _cli("--resume", run, "--max-steps", "2", "--quiet")
    assert code == 0, lines


# -- 10. resume on other data ---------------------------------------------------------------------

def test_resume_from_another_directory_refuses_other_data(registry, tmp_path: Path, monkeypatch) -> None:
    here, there = tmp_path / "here", tmp_path / "there"
    write_aligned(here / "pairs", count=3)
    write_aligned(there / "pairs", count=2, seed=7)  # same relative name, other files
    monkeypatch.chdir(here)
    run = tmp_path / "run"
    imgtrans.train(_config(registry, "pairs", run, epochs=1))  # data.source is the relative "pairs"

    monkeypatch.chdir(there)
    code, lines = _cli("--resume", run, "--epochs", "2", "--quiet")
    assert code == 1 and len(lines) == 1, lines
    assert str((here / "pairs").resolve()) in lines[0] and str((there / "pairs").resolve()) in lines[0], lines
    assert "3 files" in lines[0] and "2 files" in lines[0]
    assert "epochs = 1" in (run / "config.toml").read_text(), "a refused resume changes nothing"

    # the same files elsewhere (a copied folder): a warning, and the run goes on
    shutil.rmtree(there / "pairs")
    shutil.copytree(here / "pairs", there / "pairs")
    result = CliRunner().invoke(cli, ["train", "--resume", str(run), "--epochs", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "holds the same file names and sizes" in result.output
    assert "epochs = 2" in (run / "config.toml").read_text()


def test_resume_refuses_files_replaced_in_place_by_others_of_the_same_size(registry, tmp_path: Path) -> None:
    """Names and sizes were all the fingerprint covered: images replaced in place by others of the
    same byte size resumed silently.  The contents count now; --allow-data-change accepts them."""
    from PIL import Image

    data = write_aligned(tmp_path / "data", count=3)
    for png in (data / "train").glob("*.png"):  # stored uncompressed: the byte size follows the image size
        Image.open(png).save(png, compress_level=0)
    run = tmp_path / "run"
    imgtrans.train(_config(registry, data, run, epochs=1))
    first = sorted((data / "train").glob("*.png"))[0]
    size = first.stat().st_size
    Image.fromarray(255 - np.asarray(Image.open(first))).save(first, compress_level=0)  # other pixels
    assert first.stat().st_size == size
    code, lines = _cli("--resume", run, "--epochs", "2", "--quiet")
    assert code == 1 and len(lines) == 1 and "other file contents" in lines[0] and "--allow-data-change" in lines[0]
    assert "epochs = 1" in (run / "config.toml").read_text()
    result = CliRunner().invoke(cli, ["train", "--resume", str(run), "--epochs", "2", "--quiet", "--allow-data-change"])
    assert result.exit_code == 0, result.output
    assert "continuing on it (--allow-data-change)" in result.output and "epochs = 2" in (run / "config.toml").read_text()


# -- 12. one line instead of a traceback ----------------------------------------------------------

def test_a_full_disk_while_checkpointing_is_one_line_and_keeps_the_previous_checkpoint(
        registry, tmp_path: Path, monkeypatch) -> None:
    import imgtrans.core.checkpoint as checkpoint

    data = write_aligned(tmp_path / "data", count=4)
    run = tmp_path / "run"
    real = checkpoint.save_file
    calls = []

    def fill_disk(tensors, path, metadata=None):
        calls.append(path)
        if len(calls) == 3:  # step 3: half a file, then the disk is full
            Path(path).write_bytes(b"x" * 1000)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        return real(tensors, path, metadata=metadata)

    monkeypatch.setattr(checkpoint, "save_file", fill_disk)
    code, lines = _cli("pix2pix", "--config", _toml(registry, tmp_path, data), "--out", run, "--quiet")
    assert code == 1 and len(lines) == 1, lines
    assert "No space left on device" in lines[0] and "step_00000002.safetensors) is intact" in lines[0], lines
    assert f"imgtrans train --resume {run}" in lines[0]
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["last.safetensors", "step_00000001.safetensors", "step_00000002.safetensors"], names
    monkeypatch.setattr(checkpoint, "save_file", real)
    code, lines = _cli("--resume", run, "--quiet")
    assert code == 0, lines
    assert [r["resumed_from_step"] for r in records(run) if "resumed_from_step" in r] == [2]


def _damage_state(path: Path, text: str) -> None:
    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = dict(f.metadata())
    meta["training_state"] = text
    path.unlink()  # a new file: last.safetensors (a hard link) keeps the good one
    save_file(tensors, str(path), metadata=meta)


@pytest.mark.parametrize("text", ['{"version": 1, "step": 3', "[1, 2]", '{"version": 1, "step": 3}'],
                         ids=["invalid-json", "a-list", "fields-missing"])
def test_a_malformed_training_state_falls_back_to_the_previous_checkpoint(registry, tmp_path: Path,
                                                                          text: str) -> None:
    data = write_aligned(tmp_path / "data", count=4)
    run = tmp_path / "run"
    imgtrans.train(_config(registry, data, run, max_steps=3))
    (run / "checkpoints" / "last.safetensors").unlink()
    _damage_state(run / "checkpoints" / "step_00000003.safetensors", text)
    result = CliRunner().invoke(cli, ["train", "--resume", str(run), "--max-steps", "4", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "step_00000003.safetensors" in result.output and "resuming from an earlier checkpoint" in result.output
    assert [r["resumed_from_step"] for r in records(run) if "resumed_from_step" in r] == [2]


@pytest.mark.parametrize("args, message", [
    (["--crop-size", "512", "--load-size", "286"], "crop_size 512 is larger than data.load_size 286"),
    (["--epochs", "0", "--epochs-decay", "0"], "at least one step"),
    (["--set", "optim.max_steps=0"], "max_steps"),
    (["--set", "optim.epochs=-3"], "epochs"),
    (["--data", "{bad}", "--set", "data.format=aligned"], "none of the 2 training items could be read"),
], ids=["crop-over-load", "zero-epochs", "zero-steps", "negative-epochs", "unreadable-data"])
def test_a_refused_run_leaves_no_run_directory(registry, tmp_path: Path, args: list[str], message: str) -> None:
    data = write_aligned(tmp_path / "data", count=2)
    bad = tmp_path / "bad"
    for i in range(2):  # images by name, unreadable: found only when the first batch is built
        (bad / "train").mkdir(parents=True, exist_ok=True)
        (bad / "train" / f"x{i}.png").write_bytes(b"not a png")
    args = [str(bad) if a == "{bad}" else a for a in args]
    out = tmp_path / "runs" / "new"
    code, lines = _cli("pix2pix", "--config", _toml(registry, tmp_path, data), "--out", out, "--quiet", *args)
    assert code == 2 and len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "runs").exists()


def test_an_unwritable_out_is_one_line(registry, tmp_path: Path) -> None:
    data = write_aligned(tmp_path / "data", count=2)
    (tmp_path / "file").write_text("")
    code, lines = _cli("pix2pix", "--config", _toml(registry, tmp_path, data), "--out", tmp_path / "file" / "run",
                       "--quiet")
    assert code == 2 and len(lines) == 1 and "cannot create the run directory" in lines[0], lines


# -- 13. rough edges ------------------------------------------------------------------------------

def test_resume_prefers_an_intact_last_over_older_step_files(registry, tmp_path: Path) -> None:
    data = write_aligned(tmp_path / "data", count=4)
    run = tmp_path / "run"
    imgtrans.train(_config(registry, data, run, max_steps=3))
    ckpts = run / "checkpoints"
    last = ckpts / "last.safetensors"
    copy = last.read_bytes()
    last.unlink()
    last.write_bytes(copy)  # a copy, as where hard links are not possible
    (ckpts / "step_00000003.safetensors").write_bytes(copy[:1000])  # damaged
    result = CliRunner().invoke(cli, ["train", "--resume", str(run), "--max-steps", "4", "--quiet"])
    assert result.exit_code == 0, result.output
    assert [r["resumed_from_step"] for r in records(run) if "resumed_from_step" in r] == [3]


def test_resume_removes_what_a_killed_run_left(registry, tmp_path: Path) -> None:
    data = write_aligned(tmp_path / "data", count=2)
    run = tmp_path / "run"
    imgtrans.train(_config(registry, data, run, max_steps=1))
    stale = [run / ".config.toml-k2j4h5g6.toml", run / ".metrics.jsonl-a1b2c3d4.jsonl",
             run / "checkpoints" / ".step_00000002.safetensors-zz9y8x7w.safetensors",
             run / "previews" / ".epoch_0001.png-q1w2e3r4.png"]
    for path in stale:
        path.write_bytes(b"half")
    (run / ".keep").write_text("a user's hidden file is not a temporary file")
    imgtrans.train(resume_config(run, registry, {"max_steps": 2}), resume=True)
    assert not any(p.exists() for p in stale) and (run / ".keep").exists()


def test_ctrl_c_says_where_to_continue(registry, tmp_path: Path, monkeypatch) -> None:
    from imgtrans.training.step_engine import StepEngine

    data = write_aligned(tmp_path / "data", count=6)
    toml = _toml(registry, tmp_path, data)
    real, steps = StepEngine.end_step, []

    def interrupt_at(n):
        def end_step(self):
            steps.append(1)
            if len(steps) == n:
                raise KeyboardInterrupt
            return real(self)
        return end_step

    run = tmp_path / "run"
    monkeypatch.setattr(StepEngine, "end_step", interrupt_at(1))
    code, lines = _cli("pix2pix", "--config", toml, "--out", run, "--quiet", "--set", "run.checkpoint_every_steps=2")
    assert code == 130 and lines == ["interrupted at step 0, before the first checkpoint: there is nothing to "
                                     "resume (start the run again with --overwrite)"], lines

    steps.clear()
    monkeypatch.setattr(StepEngine, "end_step", interrupt_at(4))
    code, lines = _cli("pix2pix", "--config", toml, "--out", run, "--quiet", "--set", "run.checkpoint_every_steps=2",
                       "--overwrite")
    assert code == 130 and lines == [f"interrupted at step 3; continue from the checkpoint of step 2 with: "
                                     f"imgtrans train --resume {run}"], lines
    monkeypatch.setattr(StepEngine, "end_step", real)
    code, lines = _cli("--resume", run, "--quiet")  # the lock went with the interrupted run
    assert code == 0, lines


def test_the_nan_message_names_the_checkpoint_that_exists(registry, tmp_path: Path) -> None:
    data = write_aligned(tmp_path / "data", count=4)
    for every, expected in ((0, "no checkpoint was written before it"), (1, "step_00000001.safetensors (step 1)")):
        run = tmp_path / f"run{every}"
        cfg = _config(registry, data, run, lr=1e30, epochs=3)
        cfg.run.checkpoint_every_steps, cfg.run.log_every = every, 2
        with pytest.raises(FloatingPointError) as info:
            imgtrans.train(cfg)
        assert "NaN or infinite" in str(info.value) and expected in str(info.value), str(info.value)
        if every:  # step 1's checkpoint was written before any losses were looked at
            assert "may hold the diverged weights" in str(info.value)


def test_run_length_zero_is_refused(registry, tmp_path: Path) -> None:
    data = write_aligned(tmp_path / "data", count=2)
    with pytest.raises(ConfigError, match="at least one step"):
        imgtrans.train(_config(registry, data, tmp_path / "run", epochs=0, epochs_decay=0))
    # zero flat epochs with decay epochs is a valid run
    assert imgtrans.train(_config(registry, data, tmp_path / "run", epochs=0, epochs_decay=1)).steps == 2


def test_the_lock_ends_with_the_run_not_with_its_forked_workers(tmp_path: Path) -> None:
    """Data-loader workers are forked and inherited the lock's descriptor: after a SIGKILL of the
    run, an orphaned worker held the lock for seconds and the next run named the dead PID."""
    import time

    run = tmp_path / "run"
    run.mkdir()
    lock = RunLock(run).acquire()
    started, ready = os.pipe()
    child = os.fork()
    if child == 0:  # a worker: lives on after its parent lets go
        os.write(ready, b"1")  # running Python code: the fork hooks have run
        time.sleep(3)
        os._exit(0)
    os.read(started, 1)
    try:
        lock.release()  # the run ends (a SIGKILL drops its descriptors the same way)
        RunLock(run).acquire().release()  # free at once, although the worker still runs
    finally:
        os.kill(child, 9)
        os.waitpid(child, 0)


@pytest.mark.parametrize("batch, size, hint", [(100_000, 4096, "nothing above --batch-size 8 at this size"),
                                               (4, 16384, "nothing above --crop-size and --load-size 5792 at")])
def test_a_step_that_cannot_fit_in_memory_is_refused_before_anything(registry, tmp_path: Path, monkeypatch,
                                                                      batch: int, size: int, hint: str) -> None:
    """--batch-size 100000 --crop-size 4096 reached 12.5 GB before anything refused; --crop-size
    16384 ended in a traceback at 10.5 GB.  A lower bound of a step's memory is checked first."""
    from imgtrans.training import trainer

    monkeypatch.setattr(trainer, "available_memory", lambda device: 8 * 2**30)
    data = write_aligned(tmp_path / "data", count=2)
    config = _config(registry, data, tmp_path / "run", max_steps=1)
    config.data.batch_size, config.data.load_size, config.data.crop_size = batch, size, size
    with pytest.raises(ConfigError, match="needs at least .* GiB, more than the 8.0 GiB available") as info:
        imgtrans.train(config)
    assert hint in str(info.value) and not (tmp_path / "run").exists()


def test_a_log_gets_one_whole_line_per_epoch_not_a_cut_bar(registry, tmp_path: Path) -> None:
    """In a log (make demo > file) the progress bar was drawn once, cut to 80 columns with '…'."""
    data = write_aligned(tmp_path / "data", count=2)
    result = CliRunner().invoke(cli, ["train", "pix2pix", "--config", str(_toml(registry, tmp_path, data, epochs=2)),
                                      "--data", str(data), "--out", str(tmp_path / "run")], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"], result.output
    assert all("G_L1=" in line and "img/s" in line for line in lines) and "…" not in result.output
