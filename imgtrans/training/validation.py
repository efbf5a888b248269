"""Validation during training: the generators scored on a held-out paired split.

Scored exactly like ``imgtrans eval``: each image at its native size through
:func:`~imgtrans.inference.engine.run_generator`, the output quantised to 8 bits (what a PNG
would hold), then L1 / PSNR / SSIM (:mod:`imgtrans.metrics`) against the target.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..inference.engine import run_generator
from ..interfaces import Recipe
from ..metrics import METRICS, quantise


def validate(generator: nn.Module, dataset: Any, *, stride: int, norm_stats: str = "instance",
             max_items: int | None = None, device: str | torch.device = "cpu") -> dict[str, float]:
    """Mean ``val_l1``, ``val_psnr`` (dB), ``val_ssim`` over the first ``max_items`` items of ``dataset``
    (items with "A" and "B" tensors in [-1, 1]), plus ``val_images``, the number scored.

    Items that are ``None`` (a :class:`~imgtrans.data.robust.SkipBadItems` wrapper's unreadable
    ones) are left out.  The generator runs in eval mode without gradients; every submodule's
    train/eval mode is restored afterwards.  PSNR is ``inf`` for an image reproduced exactly (as in
    ``imgtrans eval``); with no scorable item every figure is ``nan``.
    """
    device = torch.device(device)
    count = len(dataset) if max_items is None else min(len(dataset), max_items)
    totals = {name: 0.0 for name in METRICS}
    scored = 0
    modes = [(m, m.training) for m in generator.modules()]
    generator.eval()
    try:
        with torch.inference_mode():
            for i in range(count):
                item = dataset[i]
                if item is None:
                    continue
                a, b = item["A"][None].to(device), item["B"][None]
                out = run_generator(generator, a, stride=stride, norm_stats=norm_stats).cpu()
                out = quantise(out)
                for name, fn in METRICS.items():
                    totals[name] += float(fn(out, b.float())[0])
                scored += 1
    finally:
        for module, training in modes:
            module.training = training
    mean = {name: (total / scored if scored else math.nan) for name, total in totals.items()}
    return {"val_l1": mean["l1"], "val_psnr": mean["psnr"], "val_ssim": mean["ssim"], "val_images": scored}


def validate_directions(recipe: Recipe, dataset: Any, *, norm_stats: str, device: torch.device) -> dict[str, Any]:
    """Scores of every direction the recipe trains (``val_l1``...; ``val_BtoA_l1``... for the way back)."""
    record: dict[str, Any] = {}
    for direction, gen in recipe.generators().items():
        view = dataset if direction == "AtoB" else Swapped(dataset)
        scores = validate(gen, view, stride=gen.stride, norm_stats=norm_stats, device=device)
        prefix = "val_" if direction == "AtoB" else f"val_{direction}_"
        record.update({prefix + k[len("val_"):]: v for k, v in scores.items()})
    return record


class Swapped:
    """A validation set seen the other way round: ``A`` and ``B`` exchanged (None items stay None)."""

    def __init__(self, dataset: Any):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        item = self.dataset[index]
        return None if item is None else {**item, "A": item["B"], "B": item["A"]}
