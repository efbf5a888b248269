"""Any-size, batched generator execution with a choice of normalisation statistics.

Inputs are padded (reflect, falling back to replicate for tiny images) to a multiple of the
generator's stride, run, and cropped back, so a U-Net-256 accepts 17x9 or 1000x700 images.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn


@contextlib.contextmanager
def instance_statistics(net: nn.Module) -> Iterator[None]:
    """Make every BatchNorm use the statistics of each image, as the reference does at test time
    (it leaves networks in train mode).  Per image, not per batch, so batching changes nothing;
    running statistics are left untouched."""
    patched = []
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.forward = _instance_forward.__get__(m)  # type: ignore[method-assign]
            patched.append(m)
    try:
        yield
    finally:
        for m in patched:
            del m.forward


def _instance_forward(self: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    return F.instance_norm(x, None, None, self.weight, self.bias, use_input_stats=True, eps=self.eps)


def pad_to_multiple(x: torch.Tensor, stride: int) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Pad ``(N, C, H, W)`` symmetrically to multiples of ``stride``; returns the padding (l, r, t, b)."""
    h, w = x.shape[-2:]
    ph, pw = math.ceil(h / stride) * stride - h, math.ceil(w / stride) * stride - w
    pads = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
    remaining = list(pads)
    while any(remaining):
        h, w = x.shape[-2:]
        step = [min(remaining[0], w - 1), min(remaining[1], w - 1), min(remaining[2], h - 1), min(remaining[3], h - 1)]
        if not any(step):  # a 1-pixel side cannot be reflected
            x = F.pad(x, tuple(remaining), mode="replicate")
            break
        x = F.pad(x, tuple(step), mode="reflect")
        remaining = [r - s for r, s in zip(remaining, step)]
    return x, pads


@torch.inference_mode()
def run_generator(generator: nn.Module, images: torch.Tensor, *, stride: int = 1,
                  norm_stats: str = "running") -> torch.Tensor:
    """Translate a batch of same-size images of any size; output has the input's height and width."""
    if norm_stats not in ("running", "instance"):
        raise ValueError(f"norm_stats must be 'running' or 'instance', not {norm_stats!r}")
    h, w = images.shape[-2:]
    padded, (left, _, top, _) = pad_to_multiple(images, stride)
    ctx = instance_statistics(generator) if norm_stats == "instance" else contextlib.nullcontext()
    with ctx:
        out = generator(padded)
    return out[..., top:top + h, left:left + w]
