"""Transposed convolution against resize-convolution (and pixel shuffle) at equal steps on basemap.

Trains the same preset once per ``generator.upsample`` choice (same seed, same data order, same
number of steps), scores each model on basemap's held-out test tiles (L1, PSNR, SSIM, as
``imgtrans eval``), prints a table next to the identity baseline, and writes per-mode contact
sheets plus one comparison sheet (input | one column per mode | target) into OUT.

    python benchmarks/upsampling.py                                  # cpu_demo preset, full schedule
    python benchmarks/upsampling.py --steps 300 --mode transpose --mode resize
    python benchmarks/upsampling.py --steps 200 --set generator.name=unet_128 \\
        --set data.load_size=143 --set data.crop_size=128           # a small, quick comparison
    python benchmarks/upsampling.py --set generator.name=resnet_9blocks --set generator.norm=instance

One run per mode is one sample: GAN training is noisy, so repeat with other --seed values before
trusting a small difference.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

import imgtrans
from imgtrans.core.config import load_toml, parse_set_options, resolve
from imgtrans.data.catalog import resolve_dataset
from imgtrans.data.images import list_images
from imgtrans.metrics.evaluate import evaluate
from imgtrans.core.plugin_host import get_host

MODES = ("transpose", "resize", "pixelshuffle")


def comparison_sheet(test_dir: Path, out: Path, modes: list[str], rows: int, target: Path) -> None:
    """input | each mode's translation | target, for the first ``rows`` test tiles."""
    lines = []
    for pair_path in list_images(test_dir)[:rows]:
        pair = np.asarray(Image.open(pair_path).convert("RGB"))
        half = pair.shape[1] // 2
        cells = [pair[:, :half]]
        cells += [np.asarray(Image.open(out / mode / "test" / f"{pair_path.stem}.png").convert("RGB"))
                  for mode in modes]
        cells.append(pair[:, half:2 * half])
        lines.append(np.concatenate(cells, axis=1))
    Image.fromarray(np.concatenate(lines, axis=0)).save(target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="configs/cpu_demo.toml", help="training preset [configs/cpu_demo.toml]")
    parser.add_argument("--mode", action="append", choices=("transpose", "resize", "bilinear", "pixelshuffle"),
                        help=f"upsample choices to compare [{', '.join(MODES)}]")
    parser.add_argument("--steps", type=int, help="training steps per mode [the preset's schedule]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override the preset, as train --set")
    parser.add_argument("--out", type=Path, default=Path("runs/upsampling"))
    parser.add_argument("--rows", type=int, default=6, help="test tiles in the comparison sheet [6]")
    args = parser.parse_args()
    modes = args.mode or list(MODES)
    registry = get_host().registry
    data = resolve_dataset("basemap", get_host().catalog)
    results, identity = {}, {}
    for mode in modes:
        layers = [load_toml(args.preset), parse_set_options(args.settings),
                  {"generator": {"upsample": mode}, "data": {"source": "basemap"},
                   "run": {"out": str(args.out / mode), "seed": args.seed, "progress": False}}]
        if args.steps:
            layers.append({"optim": {"max_steps": args.steps}})
        config = resolve("pix2pix", registry, layers)
        start = time.perf_counter()
        trained = imgtrans.train(config, overwrite=True)
        seconds = time.perf_counter() - start
        model = imgtrans.load_model(str(trained.model_path))
        scores = evaluate({mode: model, "identity": None}, data, "test", out_dir=args.out / mode / "test",
                          contact_sheet=args.out / f"contact_{mode}.png")
        params = sum(p.numel() for p in model.generator.parameters())
        results[mode] = {"steps": trained.steps, "train_s": round(seconds, 1), "parameters": params,
                         "count": scores[0].count, **scores[0].figures}
        identity = {"count": scores[1].count, **scores[1].figures}
        print(f"{mode}: {json.dumps(results[mode])}", flush=True)
    results["identity"] = identity
    comparison_sheet(data / "test", args.out, modes, args.rows, args.out / "comparison.png")
    print(f"\n{'':<13}{'steps':>7}{'train s':>9}{'params':>12}{'L1':>9}{'PSNR dB':>9}{'SSIM':>8}{'grid x':>8}")
    for name, r in results.items():
        steps, secs, params = (r.get("steps", ""), r.get("train_s", ""), r.get("parameters", ""))
        print(f"{name:<13}{steps:>7}{secs:>9}{params:>12}{r['l1']:>9.4f}{r['psnr']:>9.2f}{r['ssim']:>8.4f}{r['grid']:>8.2f}")
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\ncontact sheets: {args.out}/contact_MODE.png; input | {' | '.join(modes)} | target: "
          f"{args.out}/comparison.png")


if __name__ == "__main__":
    main()
