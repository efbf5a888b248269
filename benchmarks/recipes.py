"""Training step speed of every registered recipe (or those named), at a preset's sizes.

For each recipe, the median seconds of a full optimisation step through the trainer's own step
engine, on random batches of the preset's crop size, with the precisions interleaved round by
round (the machine is shared and noisy: interleaving keeps the comparison fair).  Prints img/s.

    python benchmarks/recipes.py                                   # every recipe with a CPU preset
    python benchmarks/recipes.py --recipe cyclegan=configs/cpu_cyclegan.toml --steps 10
    python benchmarks/recipes.py --precision fp32 --precision bf16-mixed
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import imgtrans
from imgtrans.core.config import load_toml, resolve
from imgtrans.training.building import build_recipe
from imgtrans.training.step_engine import StepEngine, place_networks
from imgtrans.util.host_memory import keep_freed_memory

PRESETS = {"pix2pix": "configs/cpu_demo.toml", "cyclegan": "configs/cpu_cyclegan.toml", "cut": "configs/cpu_cut.toml",
           "fastcut": "configs/cpu_cut.toml"}


class Bench:
    """One recipe at one precision, ready to step."""

    def __init__(self, recipe_name: str, preset: str, precision: str, device: torch.device):
        registry = imgtrans.get_registry()
        cfg = resolve(recipe_name, registry, [load_toml(preset), {"run": {"precision": precision}}])
        torch.manual_seed(0)
        self.recipe = build_recipe(cfg, registry)
        fmt = place_networks(self.recipe, cfg, device)
        self.recipe.engine = StepEngine(precision, device, networks=self.recipe.networks().values())
        self.optimizers = self.recipe.configure_optimizers(cfg.optim.lr, (cfg.optim.beta1, cfg.optim.beta2))
        size, batch = cfg.data.crop_size, cfg.data.batch_size
        gen = self.recipe.generator
        self.batch = {"A": torch.rand(batch, gen.in_channels, size, size, device=device).mul(2).sub(1)
                      .contiguous(memory_format=fmt),
                      "B": torch.rand(batch, gen.out_channels, size, size, device=device).mul(2).sub(1)
                      .contiguous(memory_format=fmt)}
        self.images = batch

    def step(self) -> float:
        start = time.perf_counter()
        with self.recipe.engine.autocast():
            self.recipe.train_step(self.batch, self.optimizers)
        self.recipe.engine.end_step()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", action="append", metavar="NAME=PRESET.toml",
                        help="recipe and preset (default: pix2pix and cyclegan with their CPU presets)")
    parser.add_argument("--precision", action="append", help="fp32, bf16-mixed, fp16-mixed [fp32 and bf16-mixed]")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per recipe and precision [8]")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    keep_freed_memory()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    registered = imgtrans.get_registry().names("recipe")
    recipes = (dict(r.split("=", 1) for r in args.recipe) if args.recipe
               else {n: p for n, p in PRESETS.items() if n in registered})
    precisions = args.precision or ["fp32", "bf16-mixed"]
    cpu = torch.backends.cpu.get_cpu_capability() if device.type == "cpu" else torch.cuda.get_device_name()
    print(f"device {device} ({cpu}), torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name, preset in recipes.items():
        benches = {p: Bench(name, preset, p, device) for p in precisions}
        times: dict[str, list[float]] = {p: [] for p in precisions}
        for _ in range(args.warmup):
            for p, bench in benches.items():
                bench.step()
        for _ in range(args.steps):  # interleaved: each round runs every precision once
            for p, bench in benches.items():
                times[p].append(bench.step())
        for p in precisions:
            median = statistics.median(times[p])
            lo, hi = min(times[p]), max(times[p])
            print(f"{name:<10} {preset:<28} {p:<11} {benches[p].images / median:7.2f} img/s  "
                  f"(step median {median * 1000:7.1f} ms, range {lo * 1000:.0f}-{hi * 1000:.0f})")


if __name__ == "__main__":
    main()
