"""Thread count: one per core that other work leaves free, unless told; said when cores are left out."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import tiny_model_file
from PIL import Image

from imgtrans.util.devices import choose_threads, other_runnable, usable_cores


@pytest.fixture
def no_omp(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)


@pytest.mark.parametrize(("cores", "others", "expected"), [
    (2, 0.0, 2), (2, 0.4, 2), (2, 0.6, 1), (2, 1.0, 1), (2, 6.0, 1), (16, 3.2, 13), (1, 0.0, 1)])
def test_one_thread_per_free_core(no_omp, cores, others, expected) -> None:
    assert choose_threads(cores=cores, others=others).threads == expected


def test_an_explicit_count_wins(no_omp, monkeypatch) -> None:
    assert choose_threads(3, cores=2, others=5.0).threads == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    choice = choose_threads(cores=2, others=0.0)
    assert choice.reason == "OMP_NUM_THREADS" and choice.threads == torch.get_num_threads()


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="reads /proc/stat (Linux)")
def test_other_runnable_counts_busy_processes() -> None:
    assert other_runnable() >= 0
    spin = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(usable_cores() + 1)]
    try:
        import time

        time.sleep(0.5)
        assert other_runnable(samples=10) >= 1.5   # the spinners, whatever else runs
    finally:
        for p in spin:
            p.kill()


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="reads /proc/stat (Linux)")
def test_translate_leaves_busy_cores_alone_and_says_so(tmp_path, no_omp) -> None:
    model = tiny_model_file(tmp_path)
    Image.new("RGB", (32, 32), (90, 120, 60)).save(tmp_path / "in.png")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    # The spinners run at the lowest priority: always runnable, so /proc/stat counts them as the
    # busy cores the default must leave alone, but they give the CPU to the two translate runs
    # (which the scheduler would otherwise slow 2-3x), and those two run side by side.
    spin = [subprocess.Popen([sys.executable, "-c", "import os\nos.nice(19)\nwhile True: pass"])
            for _ in range(usable_cores() + 1)]
    try:
        runs = [subprocess.Popen([sys.executable, "-m", "imgtrans", "translate", *threads, "--model", str(model),
                                  str(tmp_path / "in.png"), str(tmp_path / out)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for threads, out in (((), "a.png"), (("--threads", "1"), "b.png"))]
        (_, busy_err), (_, told_err) = (run.communicate(timeout=300) for run in runs)
    finally:
        for p in spin:
            p.kill()
    assert [run.returncode for run in runs] == [0, 0], busy_err + told_err
    if usable_cores() > 1:
        assert f"threads: 1 of {usable_cores()} cores" in busy_err and "--threads N" in busy_err
    assert "threads:" not in told_err               # asked for: nothing to explain
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
