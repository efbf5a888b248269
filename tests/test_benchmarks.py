"""The whole-process benchmarks (issue 25) run end to end at the tiniest sizes, and their pieces
count what they claim: FLOPs of the paper's networks, the 80-column table.

The end-to-end runs start 4 processes each (plain and imgtrans, short and long), 20-40 s a run
on a busy 2-core machine, so they are marked slow; their figures are noise at these sizes and
are not checked, only that every line of the report is there.  Each run is a chain of
one-thread processes, so the selected runs are started side by side (a module fixture) and each
test waits for its own: on 2 cores that halves their time."""
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
    from machine import forward_flops
    from plain_train import step_flops

    import imgtrans

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


ONE_ROUND = ("--repeats", "1", "--threads", "1")
#: the end-to-end runs, by the test that checks each: the benchmark's arguments (``{tmp}``: a
#: folder of the module's own)
WHOLE_PROCESS = {
    "test_translate_whole_process": ["translate.py", "--whole-process", "--ngf", "4", "--images-short", "1",
                                     "--images-long", "2", "--json", "{tmp}/t.json", *ONE_ROUND],
    "test_train_whole_process_pix2pix": ["train.py", "--whole-process", "--ngf", "4", "--ndf", "4",
                                         "--steps-short", "1", "--steps-long", "2", *ONE_ROUND],
    "test_train_whole_process_cyclegan": ["train.py", "--whole-process", "--recipe", "cyclegan", "--size", "64",
                                          "--ngf", "4", "--ndf", "4", "--steps-short", "1", "--steps-long", "2",
                                          "--precision", "fp32", *ONE_ROUND],
    "test_precision_parity": ["precision_parity.py", "--steps", "4", "--window", "2", "--seeds", "2",
                              "--ngf", "4", "--ndf", "4", "--demo-config", "{tmp}/tiny_demo.toml",
                              "--json", "{tmp}/parity.json"],
    "test_step_profile": ["step_profile.py", "cyclegan", "--size", "64", "--ngf", "4", "--ndf", "4", "--steps", "1",
                          "--warmup", "1", "--precision", "fp32", "--json", "{tmp}/p.json"],
}


#: configs/cpu_demo.toml's kind of settings, a thousand times cheaper
TINY_DEMO = """
[generator]
name = "unet_256"
ngf = 4
[discriminator]
name = "patchgan_70"
ndf = 4
[data]
source = "basemap"
max_items = 4
[optim]
max_steps = 2
"""


@pytest.fixture(scope="module")
def whole_process_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                       basemap_root: Path):
    """The selected end-to-end runs, all started at once; yields their processes by test name and
    the folder ``{tmp}`` stands for.  The training datasets are built here first, so that the
    concurrent runs only read them."""
    from imgtrans.core.plugin_host import get_host
    from imgtrans.data.catalog import resolve_dataset

    selected = {item.name for item in request.session.items}
    if "test_train_whole_process_cyclegan" in selected:
        resolve_dataset("basemap_unpaired", get_host().catalog)
    tmp = tmp_path_factory.mktemp("whole-process")
    (tmp / "tiny_demo.toml").write_text(TINY_DEMO)
    runs = {name: subprocess.Popen([sys.executable, str(BENCHMARKS / args[0]),
                                    *(a.format(tmp=tmp) for a in args[1:])],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name, args in WHOLE_PROCESS.items() if name in selected}
    yield runs, tmp
    for proc in runs.values():
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def _finished(runs: tuple[dict[str, subprocess.Popen], Path], name: str) -> str:
    """What the run for test ``name`` printed, once it has succeeded."""
    proc = runs[0][name]
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-2000:]
    return stdout


def _run(runs: tuple[dict[str, subprocess.Popen], Path], name: str) -> str:
    """What the run for test ``name`` printed, once it has succeeded with a whole report."""
    stdout = _finished(runs, name)
    assert max(map(len, stdout.splitlines())) <= 80, max(stdout.splitlines(), key=len)
    assert "ratio imgtrans" in stdout and "peak at 1 thread(s): fp32 GEMM" in stdout
    assert "load before" in stdout and "variant" in stdout, stdout
    return stdout


@pytest.mark.slow
def test_translate_whole_process(whole_process_runs) -> None:
    _run(whole_process_runs, "test_translate_whole_process")
    figures = json.loads((whole_process_runs[1] / "t.json").read_text())
    assert [v["name"] for v in figures["variants"]] == ["plain fp32", "imgtrans fp32"]
    assert figures["flops_per_unit"] > 0 and figures["peaks"]["1"]["fp32_gemm"] > 0


@pytest.mark.slow
def test_train_whole_process_pix2pix(whole_process_runs) -> None:
    out = _run(whole_process_runs, "test_train_whole_process_pix2pix")
    assert "pix2pix, 256x256" in out


@pytest.mark.slow
def test_train_whole_process_cyclegan(whole_process_runs) -> None:
    out = _run(whole_process_runs, "test_train_whole_process_cyclegan")
    assert "cyclegan, 64x64" in out and "imgtrans --precision fp32" in out


@pytest.mark.slow
def test_step_profile(whole_process_runs) -> None:
    """Both sides profiled; every convolution of the step found and timed; the table fits 80 columns."""
    out = _finished(whole_process_runs, "test_step_profile")
    lines = out.splitlines()
    assert max(map(len, lines)) <= 80, max(lines, key=len)
    assert "cyclegan step, 64x64" in out and "imgtrans fp32" in out
    figures = json.loads((whole_process_runs[1] / "p.json").read_text())
    plain, fast = figures["plain"]["layers"], figures["imgtrans"]["layers"]
    # CycleGAN's ResNet generator (two of them) and PatchGAN: the 7x7 stem convolution of each
    # generator runs twice a step forward per generator (A->B->A and B->A->B, and identity)
    stem = "conv 3->4 7x7/1 on 70x70"
    assert stem in plain and stem in fast, sorted(fast)
    assert plain[stem]["calls"] == fast[stem]["calls"] >= 4
    for row in fast.values():
        assert row["fwd"] > 0 and row["flops"] > 0
    assert {"optimizer", "norms"} <= set(figures["imgtrans"]["groups"])


@pytest.mark.slow
def test_precision_parity(whole_process_runs) -> None:
    """Both parts run through the real command line; every loss of pix2pix compared; 80 columns."""
    out = _finished(whole_process_runs, "test_precision_parity")
    assert max(map(len, out.splitlines())) <= 80, max(out.splitlines(), key=len)
    figures = json.loads((whole_process_runs[1] / "parity.json").read_text())
    rows = figures["curves"]["rows"]
    assert {r["loss"] for r in rows} == {"G_GAN", "G_L1", "D_real", "D_fake"}
    # figures only (at 4 steps of a 4-channel net they say nothing about precision)
    assert all(r["same_seed"] >= 0 and r["cross_seed"] > 0 and 0 <= r["inside"] <= 1 for r in rows)
    assert len(figures["curves"]["windows"]["fp32"][0]["G_L1"]) == 2
    demo = {r["metric"]: r for r in figures["demo"]["rows"]}
    assert set(demo) == {"l1", "psnr", "ssim"} and demo["psnr"]["fp32"] > 5
