"""What a run directory holds: the resolved config, a JSONL metrics log and preview grids."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from ..data.images import save_image, to_pixels


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


def preview_grid(inputs: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Rows of input | output | target (values in [-1, 1]); greyscale is shown as RGB."""
    rows = []
    for a, g, b in zip(inputs, outputs, targets):
        row = [t.expand(3, -1, -1) if t.shape[0] == 1 else t[:3] for t in (a, g, b)]
        rows.append(torch.cat(row, dim=2))
    return torch.cat(rows, dim=1)


def save_preview(path: Path, inputs: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor) -> None:
    save_image(to_pixels(preview_grid(inputs, outputs, targets)), path)
