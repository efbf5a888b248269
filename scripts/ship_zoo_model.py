"""Turn a training run into a shipped zoo model: fp16 weights, zoo metadata, measured figures.

    python scripts/ship_zoo_model.py runs/basemap_a2b/model.safetensors --name basemap_a2b \\
        --config zoo/configs/basemap_a2b.toml

Writes ``zoo/NAME.safetensors`` (generator only, float tensors stored as fp16, which halves the
size and changes outputs by well under one grey level), evaluates it on the dataset's test split
next to an untrained network and the identity mapping, and prints the manifest entry to paste
into ``zoo/manifest.toml``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import imgtrans
from imgtrans.core.checkpoint import load_checkpoint, save_checkpoint
from imgtrans.metrics.evaluate import evaluate, untrained_like

ZOO = Path(__file__).resolve().parent.parent / "zoo"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--config", required=True, help="the TOML the model was trained with (recorded in the entry)")
    parser.add_argument("--split", default="test")
    args = parser.parse_args()

    ckpt = load_checkpoint(args.model, networks=["generator"])
    half = {k: v.half() if v.is_floating_point() else v for k, v in ckpt.state_dict("generator").items()}
    meta = dict(ckpt.metadata)
    for key in ("format", "imgtrans_version", "networks"):
        meta.pop(key, None)
    meta.update(zoo_name=args.name, source=f"{args.name}.safetensors", storage_dtype="float16")
    out = save_checkpoint(ZOO / f"{args.name}.safetensors", {"generator": half}, meta)

    model = imgtrans.load_model(out)
    results = evaluate({"model": model, "untrained": untrained_like(model), "identity": None},
                       meta["dataset"], args.split)
    for r in results:
        print(f"# {r.name:<10} L1 {r.l1:.4f}  PSNR {r.psnr:.2f} dB  SSIM {r.ssim:.4f}  grid {r.grid:.2f}  "
              f"({r.count} images)")
    budget = _budget(args.model.parent / "metrics.jsonl")
    data = out.read_bytes()
    ours = results[0]
    gen = meta["generator"]
    print(f"""
[models.{args.name}]
description = "..."
recipe = "{meta['recipe']}"
generator = {{ {', '.join(f'{k} = {_toml(v)}' for k, v in gen.items())} }}
in_channels = {meta['in_channels']}
out_channels = {meta['out_channels']}
direction = "{meta['direction']}"
source = "{args.name}.safetensors"
format = "safetensors"
sha256 = "{hashlib.sha256(data).hexdigest()}"
size = {len(data)}
dataset = "{meta['dataset']}"
norm_stats = "{meta['norm_stats']}"
trained_with = "imgtrans train {meta['recipe']} --config {args.config}"
budget = {{ {', '.join(f'{k} = {_toml(v)}' for k, v in budget.items())}, machine = "..." }}
eval = {{ split = "{args.split}", images = {ours.count}, l1 = {ours.l1:.4f}, psnr = {ours.psnr:.2f}, ssim = {ours.ssim:.4f}, grid = {ours.grid:.2f}, untrained_l1 = {results[1].l1:.4f}, untrained_psnr = {results[1].psnr:.2f}, identity_l1 = {results[2].l1:.4f}, identity_psnr = {results[2].psnr:.2f} }}
""")


def _budget(metrics: Path) -> dict[str, object]:
    """Steps, epochs and wall-clock hours of the run, from its metrics.jsonl (first to last record)."""
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    steps = [r for r in rows if "step" in r and "time" in r]
    if not steps:
        return {}
    hours = (steps[-1]["time"] - steps[0]["time"]) / 3600
    return {"steps": steps[-1]["step"], "epochs": steps[-1].get("epoch", 0), "hours": round(hours, 2)}


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return f'"{value}"' if isinstance(value, str) else str(value)


if __name__ == "__main__":
    main()
