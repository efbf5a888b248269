"""End-to-end translate throughput: decode PNGs, run the generator, encode and write PNGs.

    python benchmarks/translate.py                          # 64 x 256x256, full-size unet_256, fp32 and bf16
    python benchmarks/translate.py --channels-last off      # the same without channels-last
    python benchmarks/translate.py --precision bf16 --batch-size 4 --repeats 5
    python benchmarks/translate.py --model zoo:basemap_a2b --inputs tiles/   # a trained model, real images

Each precision is timed ``--repeats`` times (interleaved, after one untimed warm-up run) through
``imgtrans.translate`` into a fresh folder; the median is reported.  The outputs of the last run
of each precision are compared with those of the first precision (grey levels, mean and max).
Other processes on the machine make single runs noisy: compare medians, and look at the spread.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import imgtrans
from imgtrans.checkpoint import save_checkpoint
from imgtrans.inference.engine import default_channels_last
from imgtrans.inference.translate import auto_batch_size


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img).astype(np.int16)


def main() -> None:
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
        options = dict(batch_size=batch_size, norm_stats=args.norm_stats, channels_last=channels_last,
                       compile=args.compile, format=args.format)
        for p in precisions:  # warm-up: network copies, oneDNN primitives, compilation
            imgtrans.translate(model, source, root / f"warm-{p}", precision=p, **options)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        rates: dict[str, list[float]] = {p: [] for p in precisions}
        for r in range(args.repeats):
            for p in precisions:
                start = time.perf_counter()
                report = imgtrans.translate(model, source, root / f"out-{p}-{r}", precision=p, **options)
                rates[p].append(len(report.written) / (time.perf_counter() - start))
                assert not report.failed, report.failed[:3]
        for p in precisions:
            resolved = report.precision if p == "auto" else p
            cl = default_channels_last(resolved) if channels_last is None else channels_last
            print(f"translate {name}: {count} x {h}x{w} {p} batch={batch} channels_last={'on' if cl else 'off'} "
                  f"threads={torch.get_num_threads()} load={load:.1f}: median {statistics.median(rates[p]):.2f} img/s "
                  f"(runs: {', '.join(f'{x:.2f}' for x in rates[p])})")
        base = precisions[0]
        last = args.repeats - 1
        for p in precisions[1:]:
            diffs = [np.abs(_pixels(a) - _pixels(root / f"out-{p}-{last}" / a.name))
                     for a in sorted((root / f"out-{base}-{last}").iterdir())]
            print(f"{p} vs {base}: mean {np.mean([d.mean() for d in diffs]):.3f}, max {max(int(d.max()) for d in diffs)} "
                  f"grey levels over {len(diffs)} outputs; speed {statistics.median(rates[p]) / statistics.median(rates[base]):.2f}x")


if __name__ == "__main__":
    main()
