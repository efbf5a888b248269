"""Input-pipeline throughput: decoded + augmented pairs per second, as the trainer loads them.

    python benchmarks/data.py                       # basemap train split, reference augmentation
    python benchmarks/data.py --data ./pairs --workers 0 1 2

Compare with the training step (benchmarks/train.py): the loader must deliver pairs faster
than the networks consume them.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.data import DataLoader

import imgtrans
from imgtrans.core.config import resolve
from imgtrans.core.plugin_host import get_host
from imgtrans.training.trainer import build_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="basemap")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    host = get_host()
    cfg = resolve("pix2pix", imgtrans.get_registry(), [{"data": {"source": args.data, "batch_size": args.batch_size}}])
    dataset = build_dataset(cfg, host.registry, host.catalog, split="train", train=True)
    for workers in args.workers:
        loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=workers,
                            persistent_workers=workers > 0)
        rates = []
        for _ in range(args.epochs):
            start, n = time.perf_counter(), 0
            for batch in loader:
                n += batch["A"].shape[0]
            rates.append(n / (time.perf_counter() - start))
        print(f"data {args.data}: {len(dataset)} pairs, load {cfg.data.load_size} crop {cfg.data.crop_size}, "
              f"workers={workers}: median {statistics.median(rates[1:] or rates):.1f} pairs/s "
              f"(epochs: {', '.join(f'{r:.1f}' for r in rates)}) threads={torch.get_num_threads()}")


if __name__ == "__main__":
    main()
