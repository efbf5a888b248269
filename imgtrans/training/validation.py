"""Validation during training: the generators scored on a held-out paired split.

Scored by the same loop as ``imgtrans eval`` (:func:`imgtrans.metrics.scoring.score`): each image
at its native size through :func:`~imgtrans.inference.engine.run_generator`, the output quantised
to 8 bits (what a PNG would hold), then the chosen metrics (L1 / PSNR / SSIM unless
``--val-metric`` says otherwise) against the targets.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..core.config import DEFAULT_VAL_METRICS
from ..core.interfaces import Metric, Recipe, SetMetric
from ..inference.engine import run_generator
from ..metrics.evaluate import resolve_metrics
from ..metrics.scoring import Batch, score
from ..util.errors import DataError

__all__ = ["DEFAULT_VAL_METRICS", "build_metrics", "validation_metrics", "validate", "validate_directions"]


def build_metrics(names: Sequence[str] | None, weights: str | None = None) -> dict[str, Metric]:
    """Registered metrics by name (default: L1, PSNR, SSIM), built as ``imgtrans eval`` builds
    them: ``weights`` (the FID Inception weights) goes to those that take it."""
    return resolve_metrics(list(names or DEFAULT_VAL_METRICS), True, weights=weights)


def validation_metrics(names: Sequence[str], dataset: Any, split: str, weights: str | None = None) -> dict[str, Metric]:
    """The metrics a run validates with, checked at start-up rather than at the first validation:
    a set metric (FID, KID) needs ``min_images`` images of the split, and its weights are fetched
    and verified now (:meth:`~imgtrans.core.interfaces.SetMetric.prepare`), so a missing file or an
    offline machine stops the run before it trains."""
    metrics = build_metrics(names, weights)
    for name, metric in metrics.items():
        if isinstance(metric, SetMetric) and len(dataset) < metric.min_images:
            raise DataError(f"--val-metric {name} needs at least {metric.min_images} validation images, but the "
                            f"{split!r} split has {len(dataset)} (run.validate_split chooses the split)")
    for metric in metrics.values():
        if isinstance(metric, SetMetric):
            metric.prepare()
    return metrics


def _items(dataset: Any, count: int) -> Iterator[Batch]:
    for i in range(count):
        item = dataset[i]
        if item is not None:  # an unreadable file (SkipBadItems): left out
            yield Batch(item["A"][None], item["B"][None].float(), [str(item.get("path", i))], [i])


def validate(generator: nn.Module, dataset: Any, *, stride: int, norm_stats: str = "instance",
             max_items: int | None = None, device: str | torch.device = "cpu",
             metrics: Mapping[str, Metric] | None = None) -> dict[str, float]:
    """``val_<metric>`` for each of ``metrics`` (default L1, PSNR dB, SSIM) over the first ``max_items``
    items of ``dataset`` (items with "A" and "B" tensors in [-1, 1]), plus ``val_images``, the number scored.

    Items that are ``None`` (a :class:`~imgtrans.data.robust.SkipBadItems` wrapper's unreadable
    ones) are left out.  The generator runs in eval mode without gradients; every submodule's
    train/eval mode is restored afterwards.  PSNR is ``inf`` for an image reproduced exactly (as in
    ``imgtrans eval``); with no scorable item every per-image figure is ``nan``.
    """
    device = torch.device(device)
    metrics = dict(metrics) if metrics is not None else build_metrics(None)
    count = len(dataset) if max_items is None else min(len(dataset), max_items)
    modes = [(m, m.training) for m in generator.modules()]
    generator.eval()

    def translate(a: torch.Tensor) -> torch.Tensor:
        return run_generator(generator, a.to(device), stride=stride, norm_stats=norm_stats).cpu()

    try:
        scores = score(_items(dataset, count), {"model": translate}, metrics, device=device)["model"]
    finally:
        for module, training in modes:
            module.training = training
    record = {f"val_{name}": scores.figures.get(name, math.nan) for name in scores.figures}
    record["val_images"] = scores.count
    return record


def validate_directions(recipe: Recipe, dataset: Any, *, norm_stats: str, device: torch.device,
                        metrics: Mapping[str, Metric] | None = None) -> dict[str, Any]:
    """Scores of every direction the recipe trains (``val_l1``...; ``val_BtoA_l1``... for the way back)."""
    record: dict[str, Any] = {}
    for direction, gen in recipe.generators().items():
        view = dataset if direction == "AtoB" else Swapped(dataset)
        scores = validate(gen, view, stride=gen.stride, norm_stats=norm_stats, device=device, metrics=metrics)
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
