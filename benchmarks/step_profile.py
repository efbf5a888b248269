"""Where a training step's time goes, layer by layer, in the plain loop and in imgtrans.

    python benchmarks/step_profile.py pix2pix                  # ~1 min on 2 idle cores
    python benchmarks/step_profile.py cyclegan --steps 1       # ~2 min
    python benchmarks/step_profile.py pix2pix --json prof.json

Why: ``benchmarks/train.py --whole-process`` says how much faster ``imgtrans train`` is than the
paper's procedure in plain PyTorch; this says why it is not faster still.  Both steps run under
``torch.profiler`` (``--steps`` steps after ``--warmup``), each in a fresh process: the plain one
is ``benchmarks/plain_train.py``'s (fp32, NCHW, PyTorch's defaults), the imgtrans one is the
recipe's own ``train_step`` placed and run as the trainer runs it (``place_networks``,
``StepEngine`` in ``--precision``, default ``auto``, fused Adam, freed memory kept), on random
256x256 inputs, batch 1.

Every convolution is identified by its shape (kind, channels, kernel, stride, input size): one
row per distinct layer shape, with its calls per step, forward and backward milliseconds per step
on each side, the ratio, and imgtrans's GFLOP/s (from the shapes, the gradients the backward was
asked for included) against the peak measured on the spot (bf16 GEMM for bf16, else the fp32
conv; benchmarks/machine.py).  Convolutions that imgtrans_pix2pix runs as matrix products on
small maps (im2col.py) appear as one "GEMM layers" row (``mm``/``bmm`` and the unfold/fold around
them).  Everything else is the self time of the remaining operators in groups: casts and copies,
optimizer, norms, activations, padding, other.  Times are per step and include the profiler's own
overhead, which grows with the number of operators (a bf16 step's many weight casts): the
unprofiled median step time of each side is printed first, then the wall time of a profiled
step, the scale the rows add up to.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from machine import describe, header_lines, measure_peaks, peak_for
from torch.profiler import profile
from train import width_settings

CONVS = ("aten::convolution", "aten::convolution_backward")
GEMMS = ("aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm", "aten::im2col", "aten::col2im")
GROUPS = (  # (group, operator name fragments), first match wins
    ("casts and copies", ("copy_", "_to_copy", "clone", "contiguous")),
    ("optimizer", ("adam", "optimizer", "zero_grad", "_foreach")),
    ("norms", ("batch_norm", "instance_norm", "layer_norm", "group_norm")),
    ("activations", ("relu", "threshold", "tanh", "sigmoid", "dropout", "bernoulli")),
    ("padding", ("pad", "reflection", "replication")),
)


def _conv_flops(name: str, shapes: list[list[int]], args: list[Any]) -> tuple[str, float]:
    """The layer's key and this call's FLOPs (2 per multiply-add; a backward counts the input and
    weight gradients it was asked for)."""
    if name == "aten::convolution":
        x, w = shapes[0], shapes[1]
        stride, padding, dilation, transposed, groups = args[3], args[4], args[5], args[6], args[8]
        if transposed:
            flops = 2 * math.prod(x) * w[1] * w[2] * w[3]
        else:
            out = [(x[i + 2] + 2 * padding[i] - dilation[i] * (w[i + 2] - 1) - 1) // stride[i] + 1 for i in (0, 1)]
            flops = 2 * x[0] * w[0] * out[0] * out[1] * w[1] * w[2] * w[3]
        mask = (True,)
    else:
        grad, x, w = shapes[0], shapes[1], shapes[2]
        stride, transposed, groups, mask = args[4], args[7], args[9], args[10]
        flops = (2 * math.prod(x) * w[1] * w[2] * w[3] if transposed
                 else 2 * grad[0] * w[0] * grad[2] * grad[3] * w[1] * w[2] * w[3])
        flops *= int(mask[0]) + int(mask[1])
    cin, cout = (w[0], w[1] * groups) if transposed else (w[1] * groups, w[0])
    key = (f"{'convT' if transposed else 'conv'} {cin}->{cout} {w[2]}x{w[3]}/{stride[0]} "
           f"on {x[2]}x{x[3]}")
    return key, float(flops)


def _group(name: str) -> str:
    low = name.lower()
    return next((group for group, parts in GROUPS if any(p in low for p in parts)), "other")


def summarize(events: list[Any], steps: int) -> dict[str, Any]:
    """Per-step milliseconds by layer (forward, backward, FLOPs, calls) and by operator group."""
    layers: dict[str, dict[str, float]] = defaultdict(lambda: {"fwd": 0.0, "bwd": 0.0, "flops": 0.0, "calls": 0})
    groups: dict[str, float] = defaultdict(float)
    gemm = {"ms": 0.0, "flops": 0.0}
    for e in events:
        ancestors, parent = [], e.cpu_parent
        while parent is not None:
            ancestors.append(parent.name)
            parent = parent.cpu_parent
        if any(a in CONVS for a in ancestors):
            continue  # inside a convolution: counted with it
        if e.name in CONVS:
            key, flops = _conv_flops(e.name, e.input_shapes, list(e.concrete_inputs))
            row = layers[key]
            row["fwd" if e.name == CONVS[0] else "bwd"] += e.cpu_time_total / 1e3 / steps
            row["flops"] += flops / steps
            row["calls"] += (e.name == CONVS[0]) / steps
        elif e.name in GEMMS and not any(a in GEMMS for a in ancestors):
            gemm["ms"] += e.cpu_time_total / 1e3 / steps
            if e.name in ("aten::mm", "aten::bmm"):
                a, b = e.input_shapes[0], e.input_shapes[1]
                gemm["flops"] += 2 * math.prod(a) * b[-1] / steps
        elif not any(a in GEMMS for a in ancestors):
            # PyTorch's default (for-loop) Adam runs plain arithmetic operators: its record_function
            # ("Optimizer.step#Adam.step") names them
            in_optimizer = any(a.startswith("Optimizer.") for a in ancestors)
            groups["optimizer" if in_optimizer else _group(e.name)] += e.self_cpu_time_total / 1e3 / steps
    if gemm["ms"]:
        layers["GEMM layers (im2col.py)"] = {"fwd": gemm["ms"], "bwd": 0.0, "flops": gemm["flops"], "calls": 0}
    return {"layers": dict(layers), "groups": dict(groups)}


def _build(side: str, args: argparse.Namespace) -> tuple[Any, str]:
    """A function running one training step, and the arithmetic it runs in."""
    if side == "plain":
        import imgtrans_pix2pix.im2col as im2col
        from plain_train import build
        im2col.MAX_GEMM_AREA = 0  # every convolution PyTorch's own, as plain_train.py's main runs it
        trainer = build(args.recipe, args.size, args.ngf, args.ndf)
        return lambda: trainer.step(*trainer.batch()), "fp32"
    import imgtrans
    from imgtrans.core.config import parse_set_options, resolve
    from imgtrans.training.building import build_recipe
    from imgtrans.training.step_engine import StepEngine, place_networks, resolve_precision
    from imgtrans.util.host_memory import keep_freed_memory

    keep_freed_memory()  # as the trainer does
    device = torch.device("cpu")
    registry = imgtrans.get_registry()
    cfg = resolve(args.recipe, registry, [parse_set_options(width_settings(args.recipe, args.ngf, args.ndf))])
    torch.manual_seed(0)
    built = build_recipe(cfg, registry)
    fmt = place_networks(built, cfg, device)
    arithmetic = resolve_precision(args.precision, device)
    built.engine = engine = StepEngine(arithmetic, device)
    optimizers = built.configure_optimizers(cfg.optim.lr, (cfg.optim.beta1, cfg.optim.beta2))
    batch = {k: (torch.rand(1, 3, args.size, args.size) * 2 - 1).contiguous(memory_format=fmt) for k in ("A", "B")}

    def step() -> None:
        with engine.autocast():
            built.train_step(batch, optimizers)
        engine.end_step()
    return step, arithmetic


def measure_side(side: str, args: argparse.Namespace, steps: int) -> dict[str, Any]:
    step, arithmetic = _build(side, args)
    warmup = args.warmup
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    with profile(record_shapes=True) as prof:
        for _ in range(steps):
            step()
    profiled_ms = (time.perf_counter() - start) / steps * 1e3
    return {"precision": arithmetic, "step_ms": statistics.median(times[warmup:]) * 1e3, "profiled_ms": profiled_ms,
            **summarize(prof.events(), steps)}


def table(plain: dict[str, Any], fast: dict[str, Any], peak: float | None, rows: int) -> list[str]:
    """80 columns: the costliest layers, the rest of the layers, then the operator groups."""
    def total(row: dict[str, float] | None) -> float:
        return (row["fwd"] + row["bwd"]) if row else 0.0

    lines = [f"{'layer (per step)':34s} {'n':>3s} {'plain ms':>8s} {'ms':>6s} {'ratio':>5s} "
             f"{'GFLOP/s':>7s} {'peak':>4s}"]
    keys = sorted(set(plain["layers"]) | set(fast["layers"]),
                  key=lambda k: -max(total(plain["layers"].get(k)), total(fast["layers"].get(k))))
    rest = [0.0, 0.0]
    for i, key in enumerate(keys):
        p, f = total(plain["layers"].get(key)), total(fast["layers"].get(key))
        if i >= rows:
            rest[0] += p
            rest[1] += f
            continue
        row = fast["layers"].get(key) or plain["layers"][key]
        rate = row["flops"] / total(row) / 1e6 if total(row) else 0.0
        of_peak = f"{rate / peak:4.0%}" if peak and key in fast["layers"] else "  - "
        ratio = f"{p / f:5.2f}" if p and f else "    -"
        lines.append(f"{key[:34]:34s} {row['calls']:3.0f} {p:8.1f} {f:6.1f} {ratio} {rate:7.0f} {of_peak}")
    if rest[0] or rest[1]:
        lines.append(f"{'other layers':34s} {'':3s} {rest[0]:8.1f} {rest[1]:6.1f}")
    for group in sorted(set(plain["groups"]) | set(fast["groups"]),
                        key=lambda g: -max(plain["groups"].get(g, 0), fast["groups"].get(g, 0))):
        p, f = plain["groups"].get(group, 0.0), fast["groups"].get(group, 0.0)
        lines.append(f"{'  ' + group:34s} {'':3s} {p:8.1f} {f:6.1f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", choices=("pix2pix", "cyclegan"))
    parser.add_argument("--precision", default="auto", help="imgtrans's precision [auto]")
    parser.add_argument("--steps", type=int, default=None, help="profiled steps [pix2pix 10, cyclegan 1]")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rows", type=int, default=14, help="layer rows before 'other layers' [14]")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("--size", type=int, default=256, help="image size (256 is the papers')")
    parser.add_argument("--ngf", type=int, default=64, help="generator width (64 is the papers')")
    parser.add_argument("--ndf", type=int, default=64, help="discriminator width (64 is the papers')")
    parser.add_argument("--side", choices=("plain", "imgtrans"), help=argparse.SUPPRESS)  # one side, as JSON
    args = parser.parse_args()
    steps = args.steps or {"pix2pix": 10, "cyclegan": 1}[args.recipe]
    if args.side:
        print(json.dumps(measure_side(args.side, args, steps)))
        return
    info = describe()
    peaks = measure_peaks(info["torch_threads"])
    print("\n".join(header_lines(info, {info["torch_threads"]: peaks})))
    sides = {}
    for side in ("plain", "imgtrans"):
        out = subprocess.run([sys.executable, __file__, args.recipe, "--side", side, "--precision", args.precision,
                              "--steps", str(steps), "--warmup", str(args.warmup), "--size", str(args.size),
                              "--ngf", str(args.ngf), "--ndf", str(args.ndf)],
                             check=True, capture_output=True, text=True).stdout
        sides[side] = json.loads(out.strip().splitlines()[-1])
    plain, fast = sides["plain"], sides["imgtrans"]
    peak_name, peak = peak_for(fast["precision"], peaks)
    print(f"{args.recipe} step, {args.size}x{args.size}, batch 1, ngf {args.ngf}, ndf {args.ndf}, "
          f"{steps} profiled step(s) after {args.warmup}:")
    print(f"plain fp32 {plain['step_ms']:.0f} ms, imgtrans {fast['precision']} {fast['step_ms']:.0f} ms "
          f"({plain['step_ms'] / fast['step_ms']:.2f}x); peak: {peak_name}")
    print(f"under the profiler: plain {plain['profiled_ms']:.0f} ms, imgtrans {fast['profiled_ms']:.0f} ms a step "
          "(the rows' scale)")
    print("\n".join(table(plain, fast, peak, args.rows)))
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "peaks": peaks, "plain": plain, "imgtrans": fast}, indent=1))


if __name__ == "__main__":
    main()
