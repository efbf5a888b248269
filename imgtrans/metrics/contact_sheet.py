"""eval's contact sheet: input | each shown model's output | target, one row per test image.

With more than one model shown (``imgtrans eval --compare``), a header names each column, so a
sheet read on its own (the demo's, a report's) says which picture came from which model.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..data.images import image_grid, to_pixels

#: height of the header strip in pixels, and the size of its lettering
HEADER_HEIGHT = 24
FONT_SIZE = 15


class ContactSheet:
    """Collects up to ``rows`` rows from scored batches; :meth:`pixels` is the sheet to write."""

    def __init__(self, shown: Sequence[str], rows: int = 8):
        self.shown, self.rows = list(shown), rows
        self._rows: list[torch.Tensor] = []
        self._with_targets = False

    def __bool__(self) -> bool:
        return bool(self._rows)

    @property
    def full(self) -> bool:
        return len(self._rows) >= self.rows

    def add(self, inputs: torch.Tensor, outputs: dict[str, torch.Tensor], targets: torch.Tensor | None) -> None:
        """One batch (``(N, C, H, W)`` in [-1, 1]); rows beyond ``rows`` are ignored."""
        for k in range(len(inputs)):
            if self.full:
                return
            columns = [inputs[k:k + 1], *(outputs[name][k:k + 1] for name in self.shown)]
            if targets is not None:
                columns.append(targets[k:k + 1])
            self._with_targets = targets is not None
            self._rows.append(image_grid(columns))

    def pixels(self) -> np.ndarray:
        """``H x W x 3`` uint8: the rows, under a header naming the columns when models are compared."""
        grid = to_pixels(torch.cat(self._rows, dim=1))
        if len(self.shown) < 2:
            return grid
        labels = ["input", *self.shown, *(["target"] if self._with_targets else [])]
        return np.concatenate([header(labels, grid.shape[1]), grid], axis=0)


def header(labels: Sequence[str], width: int) -> np.ndarray:
    """A white strip with each label centred over its equal share of ``width`` (long labels are cut
    with an ellipsis to their column)."""
    strip = Image.new("RGB", (width, HEADER_HEIGHT), "white")
    draw = ImageDraw.Draw(strip)
    font = ImageFont.load_default(size=FONT_SIZE)
    column = width // max(1, len(labels))
    for i, label in enumerate(labels):
        text = label
        while draw.textlength(text, font=font) > column - 6 and len(text) > 1:
            text = text[:-2] + "…"
        x = i * column + (column - draw.textlength(text, font=font)) / 2
        draw.text((x, (HEADER_HEIGHT - FONT_SIZE) / 2 - 1), text, fill="black", font=font)
    return np.asarray(strip)  # RGB, as image_grid's rows
