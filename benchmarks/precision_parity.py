"""Does the default reduced precision train the same model as fp32?  Loss curves and test figures.

    python benchmarks/precision_parity.py                     # both parts, ~25 min on 2 idle AMX cores
    python benchmarks/precision_parity.py --skip-demo         # loss curves only (~12 min)
    python benchmarks/precision_parity.py --steps 40 --seeds 2 --size 64 --ngf 8 --skip-demo   # a smoke run

Why: ``--precision auto`` trains in bf16-mixed where the CPU has native bf16 (docs/training.md).
A faster step is worth nothing if the model it trains differs from fp32's by more than fp32 differs
from itself, so issue 25 asks for two checks, both made here with the real command line
(``python -m imgtrans train`` / ``eval``, fresh processes, one at a time):

* **Loss curves.** pix2pix at the paper's defaults on the offline ``basemap`` set, ``--steps``
  (200) steps at batch 1, every loss logged every step, for ``--seeds`` seeds (3) in fp32 and in
  the reduced precision (``--precision``, default bf16-mixed).  A seed fixes the initial weights
  and the data order, so fp32 and bf16 with the same seed start identical and differ only by
  arithmetic; fp32 with another seed is the run-to-run spread a user sees anyway.  Each loss is
  averaged over windows of ``--window`` (20) steps; printed per loss: the mean absolute
  difference between the windows of bf16 and fp32 at the same seed, the same between fp32 runs
  of different seeds (the spread), and the share of bf16's windows inside the fp32 runs' envelope
  (min to max over the seeds).  Within the spread: the same-seed difference is at most the
  cross-seed one for every loss.
* **The demo's test figures.** ``configs/cpu_demo.toml`` (what ``make demo`` trains) in fp32 and in
  the reduced precision, each scored by ``imgtrans eval`` on basemap's 36 test tiles (L1, PSNR,
  SSIM, the models run in fp32); the relative differences are printed against the 2% target.

Both parts print an 80-column table and the machine (benchmarks/machine.py); ``--json`` keeps
every figure.  ``--size``/``--ngf``/``--ndf`` and ``--demo-config`` shrink the runs for smoke tests.
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import describe, header_lines
from train import width_settings

ROOT = Path(__file__).resolve().parent.parent


def train(out: Path, precision: str, args: list[str]) -> float:
    """``imgtrans train pix2pix`` into ``out``; its wall time in seconds."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "imgtrans", "train", "pix2pix", "--precision", precision,
                           "--device", "cpu", "--out", str(out), "--quiet", *args],
                          capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"training into {out} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def loss_windows(run: Path, window: int) -> dict[str, list[float]]:
    """Each logged loss of a run, averaged over consecutive windows of ``window`` steps."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steps = [r for r in records if "step" in r and "img_per_s" in r]
    losses = sorted({k for r in steps for k in r if k.startswith(("G_", "D_"))})
    return {k: [statistics.fmean(r[k] for r in steps[i:i + window])
                for i in range(0, len(steps) - window + 1, window)] for k in losses}


def _distance(a: list[float], b: list[float]) -> float:
    return statistics.fmean(abs(x - y) for x, y in zip(a, b, strict=True))


def compare_curves(fp32: list[dict[str, list[float]]], reduced: list[dict[str, list[float]]]) -> list[dict[str, Any]]:
    """Per loss: same-seed distance (reduced vs fp32), cross-seed distance (fp32 vs fp32), and
    the share of the reduced runs' windows inside the fp32 envelope."""
    rows = []
    for loss in fp32[0]:
        same = statistics.fmean(_distance(r[loss], f[loss]) for r, f in zip(reduced, fp32, strict=True))
        cross = statistics.fmean(_distance(a[loss], b[loss]) for a, b in itertools.combinations(fp32, 2))
        envelope = list(zip(*(f[loss] for f in fp32), strict=True))
        inside = [min(e) <= x <= max(e) for r in reduced for x, e in zip(r[loss], envelope, strict=True)]
        rows.append({"loss": loss, "same_seed": same, "cross_seed": cross, "inside": sum(inside) / len(inside),
                     "within": same <= cross})
    return rows


def curves(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    widths = [a for w in width_settings("pix2pix", args.ngf, args.ndf) for a in ("--set", w)]
    sizes = [] if args.size == 256 else ["--load-size", str(args.size), "--crop-size", str(args.size)]
    common = ["--data", "basemap", "--max-steps", str(args.steps), "--set", "run.log_every=1", *widths, *sizes]
    runs: dict[str, list[dict[str, list[float]]]] = {"fp32": [], args.precision: []}
    seconds: dict[str, list[float]] = {"fp32": [], args.precision: []}
    for seed in range(args.seeds):
        for precision in runs:  # interleaved, so both precisions see the same machine
            out = scratch / f"curve-{precision}-{seed}"
            seconds[precision].append(train(out, precision, [*common, "--seed", str(seed)]))
            runs[precision].append(loss_windows(out, args.window))
            print(f"  seed {seed} {precision:10s} {args.steps} steps in {seconds[precision][-1]:.0f} s", flush=True)
    rows = compare_curves(runs["fp32"], runs[args.precision])
    print(f"\nloss curves: {args.steps} steps x {args.seeds} seeds, means of {args.window}-step windows;\n"
          f"|{args.precision} - fp32| at the same seed against |fp32 - fp32| across seeds:")
    print(f"{'loss':8s} {'same seed':>10s} {'fp32 spread':>11s} {'in envelope':>11s}  verdict")
    for r in rows:
        print(f"{r['loss']:8s} {r['same_seed']:10.4f} {r['cross_seed']:11.4f} {r['inside']:11.0%}  "
              f"{'within the spread' if r['within'] else 'OUTSIDE the spread'}")
    return {"rows": rows, "windows": runs, "seconds": seconds}


def demo(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    scores, seconds = {}, {}
    for precision in ("fp32", args.precision):
        out = scratch / f"demo-{precision}"
        seconds[precision] = train(out, precision, ["--config", str(args.demo_config)])
        done = subprocess.run([sys.executable, "-m", "imgtrans", "eval", "--model", str(out / "model.safetensors"),
                               "--data", "basemap", "--split", "test", "--json"],
                              capture_output=True, text=True, cwd=ROOT, check=True)
        scores[precision] = json.loads(done.stdout)
        print(f"  demo {precision:10s} trained in {seconds[precision]:.0f} s", flush=True)
    figures = {p: _figures(s) for p, s in scores.items()}
    print(f"\nthe demo ({args.demo_config.name}) on basemap's test tiles,\n"
          f"{args.precision} against fp32 (target: within 2%):")
    print(f"{'metric':8s} {'fp32':>8s} {args.precision:>11s} {'difference':>10s}  verdict")
    rows = []
    for metric, value in figures["fp32"].items():
        other = figures[args.precision][metric]
        diff = other / value - 1
        rows.append({"metric": metric, "fp32": value, "reduced": other, "relative": diff})
        print(f"{metric:8s} {value:8.4f} {other:11.4f} {diff:+10.2%}  {'within' if abs(diff) <= 0.02 else 'OUTSIDE'}")
    return {"rows": rows, "eval": scores, "seconds": seconds}


def _figures(report: list[dict[str, Any]]) -> dict[str, float]:
    """L1, PSNR and SSIM from ``imgtrans eval --json`` (one result: the model's)."""
    return {metric: float(report[0][metric]) for metric in ("l1", "psnr", "ssim")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", default="bf16-mixed", help="the reduced precision to check [bf16-mixed]")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--ndf", type=int, default=64)
    parser.add_argument("--demo-config", type=Path, default=ROOT / "configs" / "cpu_demo.toml",
                        help="the demo's settings [configs/cpu_demo.toml]")
    parser.add_argument("--skip-curves", action="store_true")
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()
    if args.seeds < 2:
        raise SystemExit(f"--seeds {args.seeds}: the fp32 spread needs at least 2")
    if args.steps < args.window:
        raise SystemExit(f"--steps {args.steps} is shorter than one --window ({args.window})")
    info = describe()
    print("\n".join(header_lines(info, {})))
    result: dict[str, Any] = {"machine": info, "precision": args.precision}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_curves:
            result["curves"] = curves(args, Path(tmp))
        if not args.skip_demo:
            result["demo"] = demo(args, Path(tmp))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
