"""How far a reduced precision moves a model's outputs, in grey levels of the written 8-bit images.

    python benchmarks/precision_error.py                                   # reference-layout unet_256, synthetic weights
    python benchmarks/precision_error.py --model zoo:basemap_a2b --data basemap --split test
    python benchmarks/precision_error.py --precision fp16 --device cuda

The synthetic model is what the reference implementation's checkpoints look like (full-size
unet_256, ngf 64, batch norm, reference initialisation, non-trivial running statistics), imported
with ``imgtrans zoo import``'s code, so it runs with the imported default ``instance`` statistics.
The figures are what ``--precision auto`` measures on its first batch (max and mean, with the
99th percentile besides); docs/translate.md quotes them.  Emulated bf16 (CPUs without native
bf16) is 25-60x slower than fp32, so keep ``--count`` small there.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import imgtrans
from imgtrans.inference.engine import run_generator


def _reference_layout(folder: Path) -> Path:
    from imgtrans.zoo.importer import import_reference

    torch.manual_seed(0)
    net = imgtrans.create_generator("unet_256")
    g = torch.Generator().manual_seed(0)
    for m in net.modules():  # running statistics as a trained network has them (not 0 / 1)
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    torch.save(net.state_dict(), folder / "reference.pth")
    return import_reference(folder / "reference.pth", folder / "reference.safetensors")


def _smooth_images(count: int, size: int) -> torch.Tensor:
    """Photo-like inputs: low-resolution noise upsampled, quantised to 8 bits like decoded files."""
    rng = torch.Generator().manual_seed(1)
    low = torch.rand(count, 3, size // 8, size // 8, generator=rng)
    x = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    return (x * 255).round() / 127.5 - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a model file or zoo name (default: the synthetic reference-layout unet_256)")
    parser.add_argument("--data", help="a paired dataset whose inputs to use (default: smooth synthetic images)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--count", type=int, default=4, help="images (synthetic, or the first of --data)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--norm-stats", choices=["running", "instance"], help="default: the model's")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = args.model or _reference_layout(Path(tmp))
        model = imgtrans.load_model(str(source), device=args.device)
        if args.data:
            from imgtrans.metrics.evaluate import load_pairs

            pairs = load_pairs(args.data, args.split, model)
            images = [pairs[i]["A"][None] for i in range(min(args.count, len(pairs)))]
        else:
            images = list(_smooth_images(args.count, args.size).split(1))
        norm_stats = args.norm_stats or model.recommended_norm_stats
        diffs = []
        start = time.perf_counter()
        for x in images:
            x = x.to(args.device)
            ref = run_generator(model.generator, x, stride=model.stride, norm_stats=norm_stats)
            low = run_generator(model.generator, x, stride=model.stride, norm_stats=norm_stats,
                                precision=args.precision, channels_last=True)
            q = [t.float().cpu().clamp(-1, 1).add(1).mul(127.5).round() for t in (ref, low)]
            diffs.append((q[0] - q[1]).abs().flatten())
        d = torch.cat(diffs).numpy()
    name = args.model or "reference-layout unet_256 ngf 64 (synthetic weights)"
    print(f"{name}, {norm_stats} statistics, {len(images)} image(s): {args.precision} vs fp32: max {d.max():.0f}, "
          f"99th percentile {np.percentile(d, 99):.1f}, mean {d.mean():.3f} grey levels "
          f"({time.perf_counter() - start:.0f} s, torch {torch.__version__})")


if __name__ == "__main__":
    main()
