"""Training throughput of the pix2pix recipe (one optimisation step = G forward, D update, G update).

Prints the median time per step and images per second over several steps, after warm-up.

    python benchmarks/train_step.py                      # paper defaults: ngf=ndf=64, 256x256, batch 1
    python benchmarks/train_step.py --ngf 32 --batch-size 4
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import imgtrans
from imgtrans.config import resolve
from imgtrans.training.trainer import build_recipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--ndf", type=int, default=None, help="defaults to --ngf")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--precision", choices=["fp32", "bf16-mixed"], default="fp32",
                        help="bf16-mixed: the step under torch.autocast(bfloat16); weights and optimizer stay fp32")
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args()

    registry = imgtrans.get_registry()
    cfg = resolve("pix2pix", registry, [{"generator": {"ngf": args.ngf}, "discriminator": {"ndf": args.ndf or args.ngf}}])
    torch.manual_seed(0)
    recipe = build_recipe(cfg, registry)
    optimizers = recipe.configure_optimizers(cfg.optim.lr, (cfg.optim.beta1, cfg.optim.beta2))
    batch = {k: torch.rand(args.batch_size, 3, args.size, args.size) * 2 - 1 for k in ("A", "B")}
    if args.channels_last:
        for net in recipe.networks().values():
            net.to(memory_format=torch.channels_last)
        batch = {k: v.contiguous(memory_format=torch.channels_last) for k, v in batch.items()}
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16-mixed")
    times = []
    for i in range(args.warmup + args.steps):
        start = time.perf_counter()
        with autocast:
            recipe.train_step(batch, optimizers)
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(f"pix2pix train step  ngf={args.ngf} ndf={args.ndf or args.ngf} {args.size}x{args.size} "
          f"batch={args.batch_size} {args.precision} channels_last={args.channels_last} "
          f"threads={torch.get_num_threads()}: median {median * 1000:.0f} ms/step, "
          f"{args.batch_size / median:.2f} img/s (min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
