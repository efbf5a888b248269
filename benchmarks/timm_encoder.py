"""unet_timm (a timm backbone as U-Net encoder) against unet_256, trained for equal wall time on basemap.

Each generator trains pix2pix with the CPU demo preset (configs/cpu_demo.toml: unet_256 at ngf 32,
PatchGAN at ndf 32, the paper's losses and augmentation) for the same time budget, then is scored on
basemap's held-out test split (L1, PSNR, SSIM, as `imgtrans eval`).  Equal wall time is equal step
counts scaled by each generator's measured step time (steps interleaved round by round, since the
machine may be shared), at a constant learning rate so that no run is cut inside a decay it was
not given time to finish.  Encoders start from random weights (``pretrained=false``) unless
``--pretrained``, so nothing needs the network.

    python benchmarks/timm_encoder.py                                  # 10 minutes each, resnet18
    python benchmarks/timm_encoder.py --budget 60 --encoder resnet18 --encoder efficientnet_b0
    python benchmarks/timm_encoder.py --budget 5 --calibrate 1         # smoke test

Needs timm (pip install "imgtrans[backbones]").  Writes runs and contact sheets under --out.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import torch

import imgtrans
from imgtrans.core.config import load_toml, resolve
from imgtrans.metrics.evaluate import evaluate
from imgtrans.training.building import build_recipe
from imgtrans.training.step_engine import StepEngine, place_networks
from imgtrans.training.trainer import train

PRESET = Path(__file__).resolve().parents[1] / "configs" / "cpu_demo.toml"


def contenders(encoders: list[str], pretrained: bool) -> dict[str, dict[str, Any]]:
    """Generator sections by label: the preset's unet_256, then unet_timm on each encoder."""
    out: dict[str, dict[str, Any]] = {"unet_256": {"name": "unet_256", "ngf": 32}}
    for encoder in encoders:
        out[f"unet_timm[{encoder}]"] = {"name": "unet_timm", "encoder": encoder, "pretrained": pretrained}
    return out


def layers(generator: dict[str, Any], args: argparse.Namespace, **optim: Any) -> list[dict[str, Any]]:
    base = load_toml(PRESET)
    base["generator"] = generator  # replaces the preset's section (unet_256's ngf is no unet_timm argument)
    return [base, {"run": {"precision": args.precision, "device": args.device, "progress": False},
                   "optim": {"epochs": 10_000, "epochs_decay": 0, **optim}}]


def step_seconds(configs: dict[str, list[dict[str, Any]]], steps: int, device: torch.device) -> dict[str, float]:
    """Median seconds per training step of each config, on random batches of its crop size."""
    registry = imgtrans.get_registry()
    benches = {}
    for label, cfg_layers in configs.items():
        cfg = resolve("pix2pix", registry, cfg_layers)
        recipe = build_recipe(cfg, registry)
        fmt = place_networks(recipe, cfg, device)
        recipe.engine = StepEngine(cfg.run.precision if cfg.run.precision != "auto" else "fp32", device,
                                   networks=recipe.networks().values())
        optimizers = recipe.configure_optimizers(cfg.optim.lr, (cfg.optim.beta1, cfg.optim.beta2))
        size, n = cfg.data.crop_size, cfg.data.batch_size
        batch = {k: torch.rand(n, 3, size, size, device=device).mul(2).sub(1).contiguous(memory_format=fmt)
                 for k in ("A", "B")}
        benches[label] = (recipe, optimizers, batch)
    times: dict[str, list[float]] = {label: [] for label in configs}
    for round_ in range(steps + 1):  # round 0 warms up
        for label, (recipe, optimizers, batch) in benches.items():
            start = time.perf_counter()
            with recipe.engine.autocast():
                recipe.train_step(batch, optimizers)
            recipe.engine.end_step()
            if round_:
                times[label].append(time.perf_counter() - start)
    return {label: statistics.median(t) for label, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=600, help="training seconds per generator [600]")
    parser.add_argument("--encoder", action="append", help="timm encoder(s) of unet_timm [resnet18]")
    parser.add_argument("--pretrained", action="store_true", help="start encoders from ImageNet weights")
    parser.add_argument("--calibrate", type=int, default=4, help="timed steps per generator to measure step time [4]")
    parser.add_argument("--precision", default="fp32", help="fp32, bf16-mixed, ... [fp32]")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="runs/timm_encoder")
    args = parser.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    args.device = device.type
    gens = contenders(args.encoder or ["resnet18"], args.pretrained)
    seconds = step_seconds({label: layers(g, args) for label, g in gens.items()}, args.calibrate, device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"budget {args.budget:g} s per generator, precision {args.precision}")
    rows = []
    for label, generator in gens.items():
        steps = max(1, round(args.budget / seconds[label]))
        out = Path(args.out) / label.replace("[", "_").replace("]", "")
        cfg = resolve("pix2pix", imgtrans.get_registry(),
                      [*layers(generator, args, max_steps=steps), {"run": {"out": str(out)}}])
        start = time.perf_counter()
        result = train(cfg, overwrite=True)
        trained = time.perf_counter() - start
        model = imgtrans.load_model(result.model_path)
        params = sum(p.numel() for p in model.generator.parameters())
        score = evaluate({label: model}, "basemap", "test", contact_sheet=out / "contact_sheet.png")[0]
        rows.append((label, params, seconds[label], result.steps, trained, score))
    print(f"{'generator':28} {'params':>8} {'s/step':>7} {'steps':>6} {'train s':>8} {'L1':>7} {'PSNR':>6} {'SSIM':>6}")
    for label, params, per_step, steps, trained, score in rows:
        print(f"{label:28} {params / 1e6:7.1f}M {per_step:7.3f} {steps:6d} {trained:8.0f} "
              f"{score.l1:7.4f} {score.psnr:6.2f} {score.ssim:6.3f}")


if __name__ == "__main__":
    main()
