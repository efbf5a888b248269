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
    python benchmarks/translate.py --whole-process --variants fp32,auto --threads 1 --threads 2 --json t.json

``--whole-process`` measures as a user experiences it: whole processes (``python -m imgtrans
translate --precision fp32`` and, as the baseline, a plain per-image fp32 loop: decode, eager
forward at batch 1, encode, one image at a time), each run on 8 and on 72 images
(``--images-short/--images-long``); the marginal rate ``64 / (t72 - t8)`` cancels start-up.
``--repeats`` interleaved rounds (default 3, see benchmarks/whole_process.py); the median rates and
the median of the per-round ratios are printed, with the machine (CPU flags, cores, load before
and after, threads), the achieved GFLOP/s (generator FLOPs an image x img/s) and their fraction
of the peak measured here (benchmarks/machine.py: the fp32 3x3 conv for fp32, the bf16 GEMM for
bf16), then an 80-column table; ``--json FILE`` keeps every figure.  ``--variants`` adds others
(``bf16``, ``auto``).  ``--threads N`` (repeatable; ``default``: each process chooses, torch's
default for the plain loop and imgtrans's own for imgtrans) runs both sides at N threads and
names the best count under the current load.  Run it without ``OMP_NUM_THREADS`` so that the
defaults mean what they say.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import imgtrans
from imgtrans.core.checkpoint import save_checkpoint
from imgtrans.data.images import load_image, to_pixels
from imgtrans.inference.engine import default_channels_last, default_precision, run_generator
from imgtrans.inference.model import TranslationModel
from imgtrans.inference.translate import auto_batch_size
from machine import describe, forward_flops, say
from whole_process import Variant, measure_machine, parse_threads, report, resolved, run_pairs


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img).astype(np.int16)


def plain_loop(model_path: str, source: Path, out: Path, threads: str) -> None:
    """The baseline: one image at a time, decode, the plain fp32 eager forward, encode (Pillow
    defaults); torch's default thread count unless ``threads`` is a number."""
    if threads != "default":
        torch.set_num_threads(int(threads))
    model = imgtrans.load_model(model_path)
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.iterdir()):
        x = torch.from_numpy(load_image(path, model.in_channels)).permute(2, 0, 1)[None].float().div(127.5).sub(1)
        y = run_generator(model.generator, x, stride=model.stride, norm_stats=model.recommended_norm_stats)
        Image.fromarray(to_pixels(y[0])).save(out / f"{path.stem}.png")


def whole_process(args: argparse.Namespace, root: Path, model: TranslationModel, name: str) -> None:
    """The plain loop against ``python -m imgtrans translate``, whole processes, marginal img/s
    between ``--images-short`` and ``--images-long`` images, interleaved (see the docstring)."""
    short, long = args.images_short, args.images_long
    if not 0 < short < long:
        raise SystemExit(f"--images-short {short} / --images-long {long}: need 0 < short < long")
    rng = np.random.default_rng(0)
    folders = {n: root / f"in-{n}" for n in (short, long)}
    for folder in folders.values():
        folder.mkdir()
    for i in range(long):
        img = Image.fromarray((rng.random((args.size, args.size, 3)) * 255).astype(np.uint8))
        for n, folder in folders.items():
            if i < n:
                img.save(folder / f"{i:04d}.png")
    scratch = root / "out"
    def plain(threads: int | None) -> Callable[[int], list[str]]:
        return lambda n: [sys.executable, __file__, "--plain-worker", str(model.source), str(folders[n]),
                          str(scratch), str(threads or "default")]

    def cli(precision: str, threads: int | None) -> Callable[[int], list[str]]:
        return lambda n: [sys.executable, "-m", "imgtrans", "translate", "--model", str(model.source),
                          str(folders[n]), str(scratch), "--precision", precision,
                          "--device", "cpu", *(["--threads", str(threads)] if threads else [])]

    info = describe()
    variants = []
    for threads in parse_threads(args.threads):
        variants.append(Variant("plain fp32", threads, resolved(threads, info["torch_threads"]), "fp32",
                                plain(threads)))
        for p in args.variants.split(","):
            arithmetic = default_precision("cpu") if p == "auto" else p
            variants.append(Variant(f"imgtrans {p}", threads, resolved(threads, info["imgtrans_threads"]),
                                    arithmetic, cli(p, threads), baseline="plain fp32"))
    peaks = measure_machine(info, variants)
    flops = forward_flops(model.generator, (1, model.in_channels, args.size, args.size))
    say(f"whole processes, {name}, {args.size}x{args.size}, {flops / 1e9:.1f} GFLOP an image, marginal rate "
          f"{short} -> {long} images, {args.repeats} interleaved rounds:")
    run_pairs(variants, short, long, args.repeats, "img", scratch)
    settings = {"model": name, "size": args.size, "images_short": short, "images_long": long,
                "repeats": args.repeats}
    report(f"translate, {name}, {args.size}x{args.size}, batch: plain 1, imgtrans its default", "img",
           variants, flops, info, peaks, settings, args.json)


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--plain-worker":
        plain_loop(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), sys.argv[5])
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
    parser.add_argument("--images-short", type=int, default=8, help="with --whole-process: the short run's images")
    parser.add_argument("--images-long", type=int, default=72, help="with --whole-process: the long run's images")
    parser.add_argument("--threads", action="append",
                        help="with --whole-process: a thread count for both sides, or 'default' (repeatable)")
    parser.add_argument("--json", type=Path, help="with --whole-process: also write every figure to this file")
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
            whole_process(args, root, model, name)
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
