"""What a run directory holds: the resolved config, a JSONL metrics log and preview grids."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from ..core.interfaces import Recipe
from ..data.images import image_grid, save_image, to_pixels
from .rundir import COLUMNS_FILE


class MetricsLog:
    """Append-only JSON lines: one object per logged step, flushed so a crash loses nothing."""

    def __init__(self, path: Path):
        self.path = path
        self._fh = open(path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps({"time": round(time.time(), 3), **record}) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def save_preview(path: Path, columns: list[tuple[str, torch.Tensor]]) -> None:
    """The grid of captioned ``columns`` as a PNG, and the captions in ``columns.txt`` beside it."""
    save_image(to_pixels(image_grid([t.detach().float().cpu() for _, t in columns])), path)
    (path.parent / COLUMNS_FILE).write_text(" | ".join(name for name, _ in columns) + "\n", encoding="utf-8")


@torch.no_grad()
def write_preview(recipe: Recipe, batch: dict[str, torch.Tensor], path: Path) -> None:
    """The recipe's preview columns for ``batch``, computed with every network in eval mode (each
    module's mode is restored afterwards, so training goes on unchanged)."""
    modes = [(m, m.training) for net in recipe.networks().values() for m in net.modules()]
    for net in recipe.networks().values():
        net.eval()
    try:
        columns = recipe.previews(batch)
    finally:
        for module, training in modes:
            module.training = training
    save_preview(path, columns)
