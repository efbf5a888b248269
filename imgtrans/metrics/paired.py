"""The core's per-image metrics as registered components: L1, PSNR and SSIM against the target."""
from __future__ import annotations

import torch

from ..core.interfaces import PairedMetric
from . import l1, psnr, ssim


class L1(PairedMetric):
    """Mean absolute error per image, pixels in [0, 1] (lower is better)."""

    better = "lower"
    label = "L1"
    protocol = "L1: mean |output - target| with pixels in [0, 1]"

    def score(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return l1(prediction, target)


class PSNR(PairedMetric):
    """Peak signal-to-noise ratio in dB, peak 1.0; an exact reproduction scores inf."""

    label = "PSNR dB"
    protocol = "PSNR: 10 log10(1 / MSE), pixels in [0, 1]"

    def score(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return psnr(prediction, target)


class SSIM(PairedMetric):
    """Structural similarity as Wang and others (2004) define it, averaged over channels.

    Args:
        window: side of the Gaussian window (smaller images use their own size).
        sigma: standard deviation of the Gaussian window.
    """

    label = "SSIM"

    def __init__(self, window: int = 11, sigma: float = 1.5):
        self.window, self.sigma = window, sigma
        self.protocol = f"SSIM: Gaussian window {window}, sigma {sigma:g}, K1 0.01, K2 0.03, pixels in [0, 1]"

    def score(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ssim(prediction, target, self.window, self.sigma)
