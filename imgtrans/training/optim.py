"""Optimizers built for speed on whatever device the parameters live on."""
from __future__ import annotations

from collections.abc import Iterable

import torch


def fast_adam(params: Iterable[torch.Tensor], lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam with its fused kernel (one pass over all parameters) where the device has one.

    Why it matters: the for-loop Adam makes about ten passes over every parameter, which cost a
    third of a paper-size pix2pix step on a 2-core CPU (54 M generator weights); fused Adam is one
    pass (CPU and CUDA, PyTorch >= 2.4).  Elsewhere fall back to the multi-tensor (foreach) one.
    The update is the same Adam either way, up to floating-point rounding.
    """
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    except (RuntimeError, ValueError):  # a device or dtype without a fused kernel
        return torch.optim.Adam(params, lr=lr, betas=betas, foreach=True)
