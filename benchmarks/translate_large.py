"""Tiled translation of one large image: wall time, megapixels/s and peak resident memory.

Nothing is read from disk: an N x N random RGB image is built in memory and translated by
``imgtrans.inference.tiling.translate_tiled`` with U-Net-256 (eval mode, running statistics).
The target is a peak RSS under 4 GB for 8192 x 8192 with the full-size network.

    python benchmarks/translate_large.py                        # 8192x8192, ngf 64, tile 1024, overlap 128
    python benchmarks/translate_large.py --size 2048 --ngf 16   # a quick check
"""
from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

import imgtrans
from imgtrans.inference.engine import run_generator
from imgtrans.inference.tiling import DEFAULT_OVERLAP, DEFAULT_TILE, tile_starts, translate_tiled


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=8192, help="image width and height (default 8192)")
    parser.add_argument("--ngf", type=int, default=64, help="U-Net-256 base width (default 64, the full size)")
    parser.add_argument("--tile", type=int, default=DEFAULT_TILE)
    parser.add_argument("--tile-overlap", type=int, default=DEFAULT_OVERLAP)
    parser.add_argument("--batch-size", type=int, default=1, help="tiles per forward pass")
    parser.add_argument("--norm-stats", default="running", choices=["running", "instance"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    gen = imgtrans.create_generator("unet_256", ngf=args.ngf).eval().to(args.device)
    pixels = np.random.default_rng(0).integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
    n_tiles = len(tile_starts(args.size, args.tile, args.tile_overlap)) ** 2
    before = peak_rss_mb()

    def run(x: torch.Tensor) -> torch.Tensor:
        return run_generator(gen, x.to(args.device), stride=256, norm_stats=args.norm_stats)

    stats: dict = {}
    start = time.perf_counter()
    out = translate_tiled(run, pixels, tile=args.tile, overlap=args.tile_overlap, out_channels=3,
                          batch_size=args.batch_size, stats=stats)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    assert out.shape == pixels.shape
    mpix = args.size * args.size / 1e6
    print(f"translate_tiled unet_256 ngf={args.ngf} {args.size}x{args.size} tile={args.tile} "
          f"overlap={args.tile_overlap} ({n_tiles} tiles) batch={args.batch_size} norm={args.norm_stats} "
          f"device={args.device} threads={torch.get_num_threads()}")
    print(f"  wall {wall:.1f} s, {mpix / wall:.3f} MP/s, {wall / n_tiles:.2f} s/tile")
    print(f"  peak RSS {peak_rss_mb():.0f} MB (before translating: {before:.0f} MB, incl. the "
          f"{pixels.nbytes / 2**20:.0f} MB input); float accumulators peak {stats['peak_buffer_bytes'] / 2**20:.0f} MB")


if __name__ == "__main__":
    main()
