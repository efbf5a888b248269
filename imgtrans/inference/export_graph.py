"""The network that is exported: pad to the stride, run the generator, crop back, all inside the graph.

A file exported from imgtrans must behave like ``imgtrans translate --precision fp32`` on any
size, so the padding of :func:`imgtrans.inference.engine.pad_to_multiple` is part of the graph,
reproduced exactly: a reflection pad repeated while the image is too small to reflect in one go
(each round reflects at most ``side - 1`` pixels), then a replicate pad for a 1-pixel side.

Exporters follow shapes symbolically, and the engine's loop depends on the shape; so the padding
is written as a gather with an index map computed from the input's size by tensor arithmetic only
(:func:`pad_index`): a fixed number of rounds (:func:`reflect_rounds`, enough for the stride), each
round a pair of ``torch.where`` on an ``arange``.  The graph's shapes then depend only on
``ceil(side / stride) * stride``, which the exporters handle without guards; the crop is a gather
too, for the same reason.  The same code is scripted for TorchScript.

The normalisation mode is baked in: for ``instance`` every batch norm of a private copy of the
generator is replaced by :class:`InstanceStatsNorm` (what :func:`~imgtrans.inference.engine.
instance_statistics` does at run time); for ``running`` the batch norms run in eval mode.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


def reflect_rounds(stride: int) -> int:
    """How many rounds of reflection the padding of any side can take: the most the engine's loop
    runs for a side of 2 (the slowest to grow) up to the stride (longer sides need one round)."""
    most = 1
    for side in range(2, max(stride, 2) + 1):
        pad = -side % stride
        lo, hi, rounds = pad // 2, pad - pad // 2, 0
        while lo or hi:
            step_lo, step_hi = min(lo, side - 1), min(hi, side - 1)
            side, lo, hi, rounds = side + step_lo + step_hi, lo - step_lo, hi - step_hi, rounds + 1
        most = max(most, rounds)
    return most


def pad_index(n: int, stride: int, rounds: int, device: torch.device) -> tuple[torch.Tensor, int]:
    """The source index of every position of a side of ``n`` pixels padded to a multiple of
    ``stride`` as the engine pads it, and the padding before the first pixel.

    Round ``k`` of the engine grows the valid interval ``[a_k, b_k]`` by reflecting about its ends;
    walking the rounds backwards maps a padded position to the pixel it copies.  The bounds are
    tensors, not Python integers, so that exporters see no shape arithmetic beyond the padded size."""
    padded = (n + stride - 1) // stride * stride
    before = (padded - n) // 2
    zero = torch.zeros((), dtype=torch.long, device=device)
    lo, hi = zero + before, zero + (padded - n - before)
    a, b = zero, zero + (n - 1)
    bounds: list[tuple[torch.Tensor, torch.Tensor]] = []
    for _ in range(rounds):
        step_lo = torch.minimum(lo, b - a)
        step_hi = torch.minimum(hi, b - a)
        bounds.append((a, b))
        a, b = a - step_lo, b + step_hi
        lo, hi = lo - step_lo, hi - step_hi
    p = torch.arange(padded, device=device) - before
    p = torch.minimum(torch.maximum(p, a), b)  # what no round reached: replicate (a 1-pixel side)
    for i in range(len(bounds) - 1, -1, -1):
        a, b = bounds[i]
        p = torch.where(p < a, 2 * a - p, p)
        p = torch.where(p > b, 2 * b - p, p)
    return p, before


class PaddedGenerator(nn.Module):
    """``(N, C, H, W)`` in [-1, 1] of any size -> ``(N, out_channels, H, W)``: pad, run, crop."""

    def __init__(self, net: nn.Module, stride: int):
        super().__init__()
        self.net = net
        self.stride = int(stride)
        self.rounds = reflect_rounds(self.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2], x.shape[3]
        rows, top = pad_index(h, self.stride, self.rounds, x.device)
        cols, left = pad_index(w, self.stride, self.rounds, x.device)
        out = self.net(x.index_select(2, rows).index_select(3, cols))
        rows = torch.arange(h, device=x.device) + top
        cols = torch.arange(w, device=x.device) + left
        return out.index_select(2, rows).index_select(3, cols)


class InstanceStatsNorm(nn.Module):
    """A batch norm that normalises each image with its own statistics (``--norm-stats instance``)."""

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm):
        super().__init__()
        channels = bn.num_features
        self.eps = float(bn.eps)
        weight = bn.weight.detach().clone() if bn.weight is not None else torch.ones(channels)
        bias = bn.bias.detach().clone() if bn.bias is not None else torch.zeros(channels)
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


def baked_network(generator: nn.Module, norm_stats: str) -> nn.Module:
    """A private eval-mode copy of ``generator`` with ``norm_stats`` built in and no gradients
    (the caller's network is not modified)."""
    if norm_stats not in ("running", "instance"):
        raise ValueError(f"norm_stats must be 'running' or 'instance', not {norm_stats!r}")
    net = copy.deepcopy(generator).cpu().float().eval()
    if norm_stats == "instance":
        _replace_batch_norms(net)
    for p in net.parameters():
        p.requires_grad_(False)  # (a layer may pick another code path while it trains)
    return net


def _replace_batch_norms(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(module, name, InstanceStatsNorm(child))
        else:
            _replace_batch_norms(child)
