"""The example's metric: the worst pixel of each image, a per-image (paired) metric."""
from __future__ import annotations

import torch

from imgtrans.api import PairedMetric


class MaxError(PairedMetric):
    """Largest absolute pixel error per image, pixels in [0, 1]: 0 is perfect, 1 is one pixel fully wrong.

    ``imgtrans eval --metric example_max_error`` scores it next to the built-in metrics, in the
    same loop; inputs are in [-1, 1] and already quantised to 8 bits.
    """

    better = "lower"  # which way is better: the report's best/worst images and --keep-best use it
    label = "max error"
    protocol = "max error: largest |output - target| per image, pixels in [0, 1], averaged over images"

    def score(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ((prediction - target).abs() / 2).flatten(1).amax(1)
