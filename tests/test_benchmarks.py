"""The whole-process benchmarks (issue 25) run end to end at the tiniest sizes, and their pieces
count what they claim: FLOPs of the paper's networks, the 80-column table.

The end-to-end runs start 4 processes each (plain and imgtrans, short and long), 20-40 s a run
on a busy 2-core machine, so they are marked slow; their figures are noise at these sizes and
are not checked, only that every line of the report is there."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> None:
    """The benchmarks import each other as siblings, as ``python benchmarks/NAME.py`` runs them."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))


def test_flops_of_the_paper_networks(bench: None) -> None:
    import imgtrans
    from machine import forward_flops
    from plain_train import step_flops

    unet = imgtrans.create_generator("unet_256")
    assert forward_flops(unet, (1, 3, 256, 256)) / 1e9 == pytest.approx(12.1, abs=0.05)  # conv_transpose counted
    assert step_flops("pix2pix", 256) / 1e9 == pytest.approx(86.9, abs=0.1)
    assert step_flops("cyclegan", 256) / 1e9 == pytest.approx(1879, abs=1)


def test_table_fits_80_columns(bench: None) -> None:
    from whole_process import table

    row = {"name": "imgtrans bf16-mixed", "threads": None, "resolved_threads": 16, "median": 123.456,
           "min": 100.5, "max": 130.25, "ratio": 2.5, "gflops": 10123.4, "fraction_of_peak": 0.85,
           "peak_name": "bf16 GEMM"}
    lines = table([row, {**row, "threads": 2, "ratio": None, "fraction_of_peak": None}], "img")
    assert len(lines) == 4 and max(map(len, lines)) <= 80
    assert "d=16" in lines[1] and "n/a" in lines[2]


def _run(*args: str) -> str:
    done = subprocess.run([sys.executable, *args, "--repeats", "1", "--threads", "1"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ratio imgtrans" in done.stdout and "peak at 1 thread(s): fp32 GEMM" in done.stdout
    assert "load before" in done.stdout and "variant" in done.stdout, done.stdout
    return done.stdout


@pytest.mark.slow
def test_translate_whole_process(tmp_path: Path) -> None:
    _run(str(BENCHMARKS / "translate.py"), "--whole-process", "--ngf", "4", "--images-short", "1",
         "--images-long", "2", "--json", str(tmp_path / "t.json"))
    figures = json.loads((tmp_path / "t.json").read_text())
    assert [v["name"] for v in figures["variants"]] == ["plain fp32", "imgtrans fp32"]
    assert figures["flops_per_unit"] > 0 and figures["peaks"]["1"]["fp32_gemm"] > 0


@pytest.mark.slow
def test_train_whole_process_pix2pix(basemap_root: Path) -> None:
    out = _run(str(BENCHMARKS / "train.py"), "--whole-process", "--ngf", "4", "--ndf", "4",
               "--steps-short", "1", "--steps-long", "2")
    assert "pix2pix, 256x256" in out


@pytest.mark.slow
def test_train_whole_process_cyclegan() -> None:
    out = _run(str(BENCHMARKS / "train.py"), "--whole-process", "--recipe", "cyclegan", "--size", "64",
               "--ngf", "4", "--ndf", "4", "--steps-short", "1", "--steps-long", "2", "--precision", "fp32")
    assert "cyclegan, 64x64" in out and "imgtrans --precision fp32" in out
