"""End-to-end translate throughput: decode PNGs, run the generator, encode and write PNGs.

    python benchmarks/translate.py                          # 64 x 256x256, full-size unet_256, fp32 and bf16
    python benchmarks/translate.py --channels-last off      # the same without channels-last
    python benchmarks/translate.py --precision bf16 --batch-size 4 --repeats 5
    python benchmarks/translate.py --model zoo:basemap_a2b --inputs tiles/   # a trained model, real images
    python benchmarks/translate.py --precision fp32 --onnx  # eager PyTorch against onnxruntime (imgtrans export)

Each precision is timed ``--repeats`` times (interleaved, after one untimed warm-up run) through
``imgtrans.translate`` into a fresh folder; the median is reported.  The outputs of the last run
of each precision are compared with those of the first precision (grey levels, mean and max).
``--onnx`` also exports the model (``imgtrans.export``, verified) and times the ONNX file through
onnxruntime in fp32, the same way (``imgtrans.translate`` with ``--model FILE.onnx``).
Other processes on the machine make single runs noisy: compare medians, and look at the spread.

    python benchmarks/translate.py --whole-process          # fp32 translate vs the plain per-image loop

``--whole-process`` measures as a user experiences it: whole processes (``python -m imgtrans
translate --precision fp32`` and, as the baseline, a plain per-image fp32 loop: decode, eager
forward at batch 1, encode, one image at a time), each run on 8 and on 72 images; the marginal
rate ``64 / (t72 - t8)`` cancels start-up.  ``--repeats`` interleaved pairs (default 3); the
median rates and the median of the per-pair ratios are printed.  ``--variants`` adds others
(``bf16``, ``auto``).  Run it without ``OMP_NUM_THREADS`` so that torch uses every core.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import imgtrans
from imgtrans.core.checkpoint import save_checkpoint
from imgtrans.inference.engine import default_channels_last
from imgtrans.inference.translate import auto_batch_size


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img).astype(np.int16)


def plain_loop(model_path: str, source: Path, out: Path) -> None:
    """The baseline: one image at a time, decode, the plain fp32 eager forward, encode (Pillow defaults)."""
    from imgtrans.data.images import load_image, to_pixels
    from imgtrans.inference.engine import run_generator

    model = imgtrans.load_model(model_path)
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.iterdir()):
        x = torch.from_numpy(load_image(path, model.in_channels)).permute(2, 0, 1)[None].float().div(127.5).sub(1)
        y = run_generator(model.generator, x, stride=model.stride, norm_stats=model.recommended_norm_stats)
        Image.fromarray(to_pixels(y[0])).save(out / f"{path.stem}.png")


def _process_seconds(variant: str, model_path: Path, source: Path, out: Path) -> float:
    if variant == "plain":
        cmd = [sys.executable, __file__, "--plain-worker", str(model_path), str(source), str(out)]
    else:
        cmd = [sys.executable, "-m", "imgtrans", "translate", "--model", str(model_path), str(source), str(out),
               "--precision", variant, "--device", "cpu"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def whole_process(args: argparse.Namespace, root: Path, model_path: Path, name: str) -> None:
    """Marginal img/s between 8 and 72 images, whole processes, interleaved pairs (see the docstring)."""
    folders = {}
    rng = np.random.default_rng(0)
    for n in (8, 72):
        folders[n] = root / f"in-{n}"
        folders[n].mkdir()
    for i in range(72):
        img = Image.fromarray((rng.random((args.size, args.size, 3)) * 255).astype(np.uint8))
        for n in (8, 72):
            if i < n:
                img.save(folders[n] / f"{i:04d}.png")
    variants = ["plain", *args.variants.split(",")]
    rates: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(args.repeats):
        for v in variants:
            t = {n: _process_seconds(v, model_path, folders[n], root / f"out-{v}-{n}-{r}") for n in (8, 72)}
            rates[v].append(64 / (t[72] - t[8]))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"whole processes, {name}, {args.size}x{args.size}, marginal rate 8 -> 72 images, {args.repeats} interleaved "
          f"pairs, {os.cpu_count()} CPUs, load {load:.1f}:")
    for v in variants:
        ratios = [a / b for a, b in zip(rates[v], rates["plain"])]
        print(f"  {v:6s} median {statistics.median(rates[v]):.2f} img/s (runs: {', '.join(f'{x:.2f}' for x in rates[v])})"
              + ("" if v == "plain" else f"; {statistics.median(ratios):.2f}x the plain loop "
                                         f"(per pair: {', '.join(f'{x:.2f}' for x in ratios)})"))


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--plain-worker":
        plain_loop(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=64, help="synthetic images (without --inputs)")
    parser.add_argument("--size", type=int, default=256, help="side of the synthetic images")
    parser.add_argument("--ngf", type=int, default=64, help="width of the untrained unet_256 (without --model)")
    parser.add_argument("--model", help="a checkpoint or zoo name instead of an untrained unet_256")
    parser.add_argument("--inputs", type=Path, help="a folder of images instead of synthetic noise")
    parser.add_argument("--precision", default="fp32,bf16", help="comma-separated: fp32, bf16, fp16, auto")
    parser.add_argument("--batch-size", default="auto", help="'auto' or a number")
    parser.add_argument("--channels-last", choices=["auto", "on", "off"], default="auto")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--format", default="png", choices=["png", "jpg", "webp"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--norm-stats", choices=["running", "instance"], help="default: the model's recommendation")
    parser.add_argument("--whole-process", action="store_true",
                        help="whole processes against the plain per-image fp32 loop (marginal rate 8 -> 72 images)")
    parser.add_argument("--variants", default="fp32",
                        help="with --whole-process: comma-separated --precision values to run besides the plain loop")
    parser.add_argument("--onnx", action="store_true", help="also time the model exported to ONNX, on onnxruntime (fp32)")
    args = parser.parse_args()
    batch_size = args.batch_size if args.batch_size == "auto" else int(args.batch_size)
    channels_last = {"auto": None, "on": True, "off": False}[args.channels_last]
    precisions = args.precision.split(",")

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.model:
            model = imgtrans.load_model(args.model)
            name = args.model
        else:
            gen = imgtrans.create_generator("unet_256", ngf=args.ngf)
            meta = {"generator": {"name": "unet_256", "ngf": args.ngf}, "in_channels": 3, "out_channels": 3,
                    "stride": 256}
            model = imgtrans.load_model(save_checkpoint(root / "m.safetensors", {"generator": gen}, meta))
            name = f"unet_256 ngf={args.ngf} (untrained)"
        if args.whole_process:
            whole_process(args, root, Path(model.source), name)
            return
        if args.inputs:
            source = args.inputs
        else:
            source = root / "in"
            source.mkdir()
            rng = np.random.default_rng(0)
            for i in range(args.count):
                pixels = (rng.random((args.size, args.size, 3)) * 255).astype(np.uint8)
                Image.fromarray(pixels).save(source / f"{i:04d}.png")
        count = len(imgtrans.inference.translate.collect_inputs(source))
        h = w = args.size
        batch = batch_size if batch_size != "auto" else f"auto({auto_batch_size(h, w, model.stride)})"
        options = dict(batch_size=batch_size, norm_stats=args.norm_stats, compile=args.compile, format=args.format)
        # label -> (model, precision, channels_last): eager PyTorch per precision, then onnxruntime
        variants = {p: (model, p, channels_last) for p in precisions}
        if args.onnx:
            exported = root / "model.onnx"
            report = imgtrans.export(model, exported, norm_stats=args.norm_stats)
            print(f"exported {exported.name}: max difference from eager fp32 {report.max_grey_levels:.4f} grey levels")
            variants["onnxruntime"] = (imgtrans.load_model(str(exported)), "fp32", None)
        for label, (m, p, cl) in variants.items():  # warm-up: network copies, oneDNN primitives, compilation
            imgtrans.translate(m, source, root / f"warm-{label}", precision=p, channels_last=cl, **options)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        rates: dict[str, list[float]] = {label: [] for label in variants}
        for r in range(args.repeats):
            for label, (m, p, cl) in variants.items():
                start = time.perf_counter()
                report = imgtrans.translate(m, source, root / f"out-{label}-{r}", precision=p, channels_last=cl,
                                            **options)
                rates[label].append(len(report.written) / (time.perf_counter() - start))
                assert not report.failed, report.failed[:3]
        for label, (m, p, cl) in variants.items():
            if label == "onnxruntime":
                how = "onnxruntime fp32"
            else:
                resolved = report.precision if p == "auto" else p
                on = default_channels_last(resolved) if cl is None else cl
                how = f"{p} channels_last={'on' if on else 'off'}"
            print(f"translate {name}: {count} x {h}x{w} {how} batch={batch} "
                  f"threads={torch.get_num_threads()} load={load:.1f}: median {statistics.median(rates[label]):.2f} img/s "
                  f"(runs: {', '.join(f'{x:.2f}' for x in rates[label])})")
        base = precisions[0]
        last = args.repeats - 1
        for label in list(variants)[1:]:
            diffs = [np.abs(_pixels(a) - _pixels(root / f"out-{label}-{last}" / a.name))
                     for a in sorted((root / f"out-{base}-{last}").iterdir())]
            print(f"{label} vs {base}: mean {np.mean([d.mean() for d in diffs]):.3f}, max {max(int(d.max()) for d in diffs)} "
                  f"grey levels over {len(diffs)} outputs; speed "
                  f"{statistics.median(rates[label]) / statistics.median(rates[base]):.2f}x")


if __name__ == "__main__":
    main()
