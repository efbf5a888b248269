"""Anti-aliased sampling (Zhang, "Making Convolutional Networks Shift-Invariant Again", 2019) as the
CUT reference uses it: a fixed binomial blur before sub-sampling (``BlurDown``) and after
zero-insertion up-sampling (``BlurUp``).  The filters are buffers, saved with the weights as the
reference saves them (``filt``), so reference state dicts load as they are."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_BINOMIAL = {1: [1.0], 2: [1.0, 1.0], 3: [1.0, 2.0, 1.0], 4: [1.0, 3.0, 3.0, 1.0], 5: [1.0, 4.0, 6.0, 4.0, 1.0]}


def binomial_filter(size: int) -> torch.Tensor:
    """The ``size x size`` outer product of a binomial row, normalised to sum 1."""
    row = torch.tensor(_BINOMIAL[size], dtype=torch.float64)
    kernel = torch.outer(row, row)
    return (kernel / kernel.sum()).float()


class BlurDown(nn.Module):
    """Blur with a 3x3 binomial filter (reflect padding), then keep every second pixel: a stride-2
    down-sampling that aliases far less than a stride-2 convolution.  ``ceil(H / 2)`` out."""

    def __init__(self, channels: int, size: int = 3):
        super().__init__()
        self.channels = channels
        self.register_buffer("filt", binomial_filter(size)[None, None].repeat(channels, 1, 1, 1))
        self.pad = nn.ReflectionPad2d([(size - 1) // 2, size // 2, (size - 1) // 2, size // 2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.pad(x), self.filt.to(x.dtype), stride=2, groups=x.shape[1])


class BlurUp(nn.Module):
    """Insert zeros between pixels and blur with a 4x4 binomial filter scaled by 4 (replicate
    padding): a 2x up-sampling without the checkerboard of a learned transposed convolution."""

    def __init__(self, channels: int, size: int = 4):
        super().__init__()
        self.channels, self.size = channels, size
        self.register_buffer("filt", (binomial_filter(size) * 4)[None, None].repeat(channels, 1, 1, 1))
        self.pad = nn.ReplicationPad2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv_transpose2d(self.pad(x), self.filt.to(x.dtype), stride=2, padding=1 + (self.size - 1) // 2,
                               groups=x.shape[1])[:, :, 1:, 1:]
        return y if self.size % 2 else y[:, :, :-1, :-1]
