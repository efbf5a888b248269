"""End-to-end translate throughput: decode PNGs, run the generator, encode PNGs.

    python benchmarks/translate.py                 # 64 images of 256x256, full-size unet_256
    python benchmarks/translate.py --count 16 --batch-size 4 --ngf 32
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import imgtrans
from imgtrans.checkpoint import save_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--norm-stats", default="running", choices=["running", "instance"])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        gen = imgtrans.create_generator("unet_256", ngf=args.ngf)
        meta = {"generator": {"name": "unet_256", "ngf": args.ngf}, "in_channels": 3, "out_channels": 3, "stride": 256}
        model = imgtrans.load_model(save_checkpoint(root / "m.safetensors", {"generator": gen}, meta))
        rng = np.random.default_rng(0)
        (root / "in").mkdir()
        for i in range(args.count):
            Image.fromarray((rng.random((args.size, args.size, 3)) * 255).astype(np.uint8)).save(root / "in" / f"{i:04d}.png")
        rates = []
        for r in range(args.repeats):
            start = time.perf_counter()
            imgtrans.translate(model, root / "in", root / f"out{r}", batch_size=args.batch_size, norm_stats=args.norm_stats)
            rates.append(args.count / (time.perf_counter() - start))
    print(f"translate unet_256 ngf={args.ngf} {args.count} x {args.size}x{args.size} batch={args.batch_size} "
          f"norm={args.norm_stats} threads={torch.get_num_threads()}: median {statistics.median(rates):.2f} img/s "
          f"(runs: {', '.join(f'{x:.2f}' for x in rates)})")


if __name__ == "__main__":
    main()
