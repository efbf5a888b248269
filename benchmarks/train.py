"""Training speed and quality parity of pix2pix at the paper's sizes (unet_256 + patchgan_70, 256x256).

Speed: the median time of a full optimisation step (G forward, D update, G update), after
warm-up, through the trainer's own step engine, for

* ``reference-like``: fp32, PyTorch's default (for-loop) Adam and oneDNN for every convolution,
  i.e. what the reference implementation runs;
* ``fp32``: imgtrans in fp32 (fused Adam, im2col convolutions on the small U-Net maps);
* ``bf16-mixed``: the same in bfloat16 autocast (``--precision auto`` where the CPU or GPU has
  native bf16); ``+channels-last`` puts every network in NHWC (``auto`` does so only where it pays).

Networks are placed by the trainer's own ``step_engine.place_networks`` (``run.channels_last = "auto"``).

Quality: trains the same number of steps on the offline ``basemap`` dataset (batch 1, seed 0,
every paper default) in fp32 and in the fast default, then prints both models' L1 / PSNR / SSIM
on the 36 test tiles and the relative L1 difference (the target is within 5%).

    python benchmarks/train.py                         # speed at batch 1 and 4, then quality (~15 min on 2 cores)
    python benchmarks/train.py --skip-quality
    python benchmarks/train.py --quality-steps 200 --skip-speed

Whole processes against a plain PyTorch loop of the paper's procedure (``--whole-process``):

    python benchmarks/train.py --whole-process                         # pix2pix, ~6 min on 2 idle cores
    python benchmarks/train.py --whole-process --recipe cyclegan       # ~8 min on 2 idle cores
    python benchmarks/train.py --whole-process --threads 1 --threads 2 --json train.json
    python benchmarks/train.py --whole-process --precision fp32        # imgtrans in fp32 too

Each side runs as a fresh process at ``--steps-short`` and ``--steps-long`` steps (defaults:
pix2pix 10 and 70, inside the first 94-step epoch of basemap; CycleGAN 1 and 3, its step being
about 1.9 TFLOP at 256x256); the marginal rate ``(long - short) / (t_long - t_short)`` cancels
start-up, and ``--repeats`` interleaved rounds (default 3) give medians and the median per-round
ratio (benchmarks/whole_process.py).  The plain side is ``benchmarks/plain_train.py`` (fp32,
PyTorch defaults, identical networks, random inputs); imgtrans is ``python -m imgtrans train
RECIPE --data basemap`` (``basemap_unpaired`` for CycleGAN) ``--max-steps N --quiet --device cpu
--precision P`` (``--precision``, default ``auto``).  Printed: the machine (CPU flags, cores,
load before and after, threads; benchmarks/machine.py), both rates, the ratio, achieved GFLOP/s
(FLOPs a step x steps/s) and their fraction of the peak measured here (fp32 conv for fp32, bf16
GEMM for bf16), the best thread count under the current load when ``--threads`` gives several
(``default``: torch's choice for the plain loop, ``choose_threads`` for imgtrans), then an
80-column table; ``--json FILE`` keeps every figure.  ``--size``, ``--ngf`` and ``--ndf`` exist
for tests (pix2pix's unet_256 needs 256).  Run it without ``OMP_NUM_THREADS``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

import imgtrans
from imgtrans.core.config import resolve
from imgtrans.core.plugin_host import get_host
from imgtrans.data.catalog import resolve_dataset
from imgtrans.training.step_engine import StepEngine, place_networks, resolve_precision
from imgtrans.util.host_memory import keep_freed_memory
from imgtrans.training.building import build_recipe
from machine import describe, say
from plain_train import step_flops
from whole_process import Variant, measure_machine, parse_threads, report, resolved, run_pairs

PAPER = {"generator": {"name": "unet_256"}, "discriminator": {"name": "patchgan_70"}}
MODES = {  # name -> (precision, fast Adam + im2col + allocator, channels-last: None off, False auto, True on)
    "reference-like": ("fp32", False, None),
    "fp32": ("fp32", True, False),
    "bf16-mixed": ("bf16-mixed", True, False),
    "bf16-mixed+channels-last": ("bf16-mixed", True, True),
}


def step_time(mode: str, batch_size: int, steps: int, warmup: int, device: torch.device) -> float:
    """Median seconds per training step."""
    import imgtrans_pix2pix.im2col as im2col

    precision, fast, channels_last = MODES[mode]
    registry = imgtrans.get_registry()
    cfg = resolve("pix2pix", registry, [PAPER])
    torch.manual_seed(0)
    saved_area = im2col.MAX_GEMM_AREA
    im2col.MAX_GEMM_AREA = saved_area if fast else 0
    try:
        recipe = build_recipe(cfg, registry)
        cfg.run.channels_last = {None: "off", False: "auto", True: "on"}[channels_last]
        fmt = place_networks(recipe, cfg, device)  # as the trainer places them
        recipe.engine = engine = StepEngine(precision, device)
        if fast:
            optimizers = recipe.configure_optimizers(cfg.optim.lr, (cfg.optim.beta1, cfg.optim.beta2))
        else:
            optimizers = {name: torch.optim.Adam(net.parameters(), lr=cfg.optim.lr, betas=(cfg.optim.beta1, cfg.optim.beta2),
                                                 foreach=False)
                          for name, net in recipe.networks().items()}
        batch = {k: (torch.rand(batch_size, 3, 256, 256, device=device) * 2 - 1).contiguous(memory_format=fmt)
                 for k in ("A", "B")}
        times = []
        for i in range(warmup + steps):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            with engine.autocast():
                recipe.train_step(batch, optimizers)
            engine.end_step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= warmup:
                times.append(time.perf_counter() - start)
    finally:
        im2col.MAX_GEMM_AREA = saved_area
    return statistics.median(times)


def speed(args: argparse.Namespace, device: torch.device) -> None:
    """Each measurement in a fresh process: allocator and oneDNN caches carry over otherwise."""
    import subprocess
    import sys

    print(f"training speed, pix2pix paper sizes, {device} ({torch.get_num_threads()} threads), "
          f"median of {args.steps} steps after {args.warmup}:")
    print(f"{'mode':28s} {'batch':>5s} {'ms/step':>9s} {'img/s':>7s} {'vs reference-like':>18s}")
    for batch_size in args.batch_sizes:
        base = None
        for mode in args.modes:
            out = subprocess.run([sys.executable, __file__, "--one", mode, str(batch_size), "--steps", str(args.steps),
                                  "--warmup", str(args.warmup), "--device", str(device)],
                                 check=True, capture_output=True, text=True).stdout
            t = float(out.split()[-1])
            base = base or (t if mode == "reference-like" else None)
            ratio = f"{base / t:.2f}x" if base else "-"
            print(f"{mode:28s} {batch_size:5d} {t * 1000:9.0f} {batch_size / t:7.2f} {ratio:>18s}", flush=True)


def quality(args: argparse.Namespace, device: torch.device) -> None:
    registry = imgtrans.get_registry()
    fast = resolve_precision("auto", device)
    print(f"\nquality parity: {args.quality_steps} steps on basemap at batch 1 (paper defaults, seed 0); "
          f"fast default here = {fast}")
    scores = {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in dict.fromkeys(["fp32", fast]):
            cfg = resolve("pix2pix", registry, [PAPER, {
                "data": {"source": "basemap"},
                "optim": {"max_steps": args.quality_steps},
                "run": {"out": str(Path(tmp) / precision), "precision": precision, "progress": False,
                        "log_every": args.quality_steps, "device": str(device)}}])
            start = time.perf_counter()
            result = imgtrans.train(cfg)
            elapsed = time.perf_counter() - start
            model = imgtrans.load_model(str(result.model_path), device=str(device))
            (score,) = imgtrans.evaluate({precision: model}, "basemap", "test")
            scores[precision] = score
            print(f"{precision:12s} L1 {score.l1:.4f}  PSNR {score.psnr:.2f} dB  SSIM {score.ssim:.3f}  "
                  f"(trained in {elapsed:.0f} s, {args.quality_steps / elapsed:.2f} img/s incl. start-up)", flush=True)
    if fast != "fp32":
        diff = scores[fast].l1 / scores["fp32"].l1 - 1
        verdict = "within" if abs(diff) <= 0.05 else "OUTSIDE"
        print(f"{fast} vs fp32 test L1: {diff:+.1%} ({verdict} the 5% parity target)")


WHOLE = {  # recipe -> (dataset, default steps short and long, the settings that widths go to)
    "pix2pix": ("basemap", (10, 70), ("generator.ngf",), ("discriminator.ndf",)),
    "cyclegan": ("basemap_unpaired", (1, 3), ("generator_a.ngf", "generator_b.ngf"),
                 ("discriminator_a.ndf", "discriminator_b.ndf")),
}


def width_settings(recipe: str, ngf: int, ndf: int) -> list[str]:
    """``--set`` values giving every generator of ``recipe`` width ``ngf`` and every discriminator ``ndf``."""
    _, _, ngf_keys, ndf_keys = WHOLE[recipe]
    return [f"{k}={ngf}" for k in ngf_keys] + [f"{k}={ndf}" for k in ndf_keys]


def whole_process(args: argparse.Namespace) -> None:
    """The plain loop against ``python -m imgtrans train``, whole processes (see the docstring)."""
    data, (short, long), _, _ = WHOLE[args.recipe]
    short, long = args.steps_short or short, args.steps_long or long
    if not 0 < short < long:
        raise SystemExit(f"--steps-short {short} / --steps-long {long}: need 0 < short < long")
    resolve_dataset(data, get_host().catalog)  # built once here, not inside a timed run
    widths = width_settings(args.recipe, args.ngf, args.ndf)
    sizes = [] if args.size == 256 else ["--load-size", str(args.size), "--crop-size", str(args.size)]
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / "run"

        def plain(threads: int | None) -> Callable[[int], list[str]]:
            return lambda n: [sys.executable, str(Path(__file__).with_name("plain_train.py")), args.recipe,
                              "--steps", str(n), "--size", str(args.size), "--ngf", str(args.ngf),
                              "--ndf", str(args.ndf), "--threads", str(threads or "default")]

        def cli(threads: int | None) -> Callable[[int], list[str]]:
            return lambda n: [sys.executable, "-m", "imgtrans", "train", args.recipe, "--data", data,
                              "--max-steps", str(n), "--quiet", "--device", "cpu", "--out", str(scratch),
                              "--precision", args.precision, *sizes,
                              *[a for w in widths for a in ("--set", w)],
                              *(["--threads", str(threads)] if threads else [])]

        info = describe()
        arithmetic = resolve_precision(args.precision, torch.device("cpu"))
        variants = []
        for threads in parse_threads(args.threads):
            variants += [Variant("plain fp32", threads, resolved(threads, info["torch_threads"]), "fp32",
                                 plain(threads)),
                         Variant(f"imgtrans {args.precision}", threads, resolved(threads, info["imgtrans_threads"]),
                                 arithmetic, cli(threads), baseline="plain fp32")]
        peaks = measure_machine(info, variants)
        flops = step_flops(args.recipe, args.size, args.ngf, args.ndf)
        what = f"{args.recipe}, {args.size}x{args.size}, batch 1, ngf {args.ngf}, ndf {args.ndf}"
        say(f"whole processes, {what}, {flops / 1e9:.1f} GFLOP a step, imgtrans {args.precision} "
              f"= {arithmetic}, marginal rate {short} -> {long} steps, {args.repeats} interleaved rounds:")
        run_pairs(variants, short, long, args.repeats, "img", scratch)
        settings = {"recipe": args.recipe, "data": data, "size": args.size, "ngf": args.ngf, "ndf": args.ndf,
                    "precision": args.precision, "arithmetic": arithmetic, "steps_short": short,
                    "steps_long": long, "repeats": args.repeats}
        report(f"train {what}, imgtrans --precision {args.precision}", "img", variants, flops, info, peaks,
               settings, args.json)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=["reference-like", "fp32", "bf16-mixed"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--quality-steps", type=int, default=600)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--whole-process", action="store_true",
                        help="whole processes: the plain PyTorch loop against imgtrans train (see above)")
    parser.add_argument("--recipe", choices=list(WHOLE), default="pix2pix", help="with --whole-process")
    parser.add_argument("--steps-short", type=int, help="with --whole-process [pix2pix 10, cyclegan 1]")
    parser.add_argument("--steps-long", type=int, help="with --whole-process [pix2pix 70, cyclegan 3]")
    parser.add_argument("--repeats", type=int, default=3, help="with --whole-process: interleaved rounds")
    parser.add_argument("--threads", action="append",
                        help="with --whole-process: a thread count for both sides, or 'default' (repeatable)")
    parser.add_argument("--precision", default="auto", help="with --whole-process: imgtrans train --precision")
    parser.add_argument("--size", type=int, default=256, help="with --whole-process: crop size (tests)")
    parser.add_argument("--ngf", type=int, default=64, help="with --whole-process: generator width (tests)")
    parser.add_argument("--ndf", type=int, default=64, help="with --whole-process: discriminator width (tests)")
    parser.add_argument("--json", type=Path, help="with --whole-process: also write every figure to this file")
    parser.add_argument("--one", nargs=2, metavar=("MODE", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.whole_process:
        whole_process(args)
        return
    device = torch.device(args.device)
    if args.one:
        mode, batch_size = args.one
        if mode != "reference-like":
            keep_freed_memory()  # as the trainer does
        print(step_time(mode, int(batch_size), args.steps, args.warmup, device))
        return
    if not args.skip_speed:
        speed(args, device)
    if not args.skip_quality:
        quality(args, device)


if __name__ == "__main__":
    main()
