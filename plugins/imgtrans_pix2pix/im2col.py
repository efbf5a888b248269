"""Convolutions that run as one matrix product on small feature maps (CPU).

Why: the U-Net's inner levels hold most of its weights (512 or 1024 channels in, 4x4 kernels;
38 of unet_256's 54 million parameters) but see feature maps of 1x1 to 16x16.  On the CPU,
oneDNN re-lays those weights out into its blocked formats on every forward and backward call,
and at these sizes the re-layout costs more than the arithmetic: it was a fifth of a paper-size
training step (benchmarks/train.py, docs/training.md).  An im2col (``unfold``) and one GEMM
read the weights as PyTorch stores them.

The modules are drop-in subclasses of ``nn.Conv2d`` / ``nn.ConvTranspose2d``: same parameters,
same state-dict keys, same results up to floating-point summation order.  They take the GEMM
path only on the CPU, only while the layer trains (gradients on), only when the smaller of the
input and output maps has at most :data:`MAX_GEMM_AREA` pixels, and only for the plain case (no
groups, dilation or output padding); everything else goes to the parent class.  Inference keeps
oneDNN: its batches amortise the re-layout, and there the GEMM path was slower
(benchmarks/translate.py, bf16, batch 8: 11.9 img/s against 19.3).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: largest feature-map area (pixels, the smaller of input and output) that takes the GEMM path;
#: measured crossover on a 2-core AVX-512 CPU: 8x8 wins clearly, 16x16 -> 32x32 is a tie
MAX_GEMM_AREA = 64


def _small(x: torch.Tensor, out_h: int, out_w: int, weight: torch.Tensor) -> bool:
    return (x.device.type == "cpu" and weight.requires_grad and torch.is_grad_enabled() and x.dim() == 4
            and min(x.shape[2] * x.shape[3], out_h * out_w) <= MAX_GEMM_AREA)


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` that multiplies the weight matrix by the im2col columns on small maps."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kh, kw = self.kernel_size
        (sh, sw), (ph, pw) = self.stride, self.padding
        if (self.groups != 1 or self.dilation != (1, 1) or self.padding_mode != "zeros"
                or isinstance(self.padding, str)):
            return super().forward(x)
        n, _, h, w = x.shape
        out_h, out_w = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        if not _small(x, out_h, out_w, self.weight):
            return super().forward(x)
        cols = F.unfold(x, (kh, kw), padding=(ph, pw), stride=(sh, sw))  # n, c*kh*kw, out_h*out_w
        weight = self.weight.reshape(self.out_channels, -1)
        out = (weight @ cols).reshape(n, self.out_channels, out_h, out_w)
        return out if self.bias is None else out + self.bias.to(out.dtype).reshape(1, -1, 1, 1)


class ConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` as one GEMM followed by ``fold`` (col2im) on small maps."""

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        kh, kw = self.kernel_size
        (sh, sw), (ph, pw) = self.stride, self.padding
        if (output_size is not None or self.groups != 1 or self.dilation != (1, 1)
                or self.output_padding != (0, 0) or self.padding_mode != "zeros"):
            return super().forward(x, output_size)
        n, c, h, w = x.shape
        out_h, out_w = (h - 1) * sh - 2 * ph + kh, (w - 1) * sw - 2 * pw + kw
        if not _small(x, out_h, out_w, self.weight):
            return super().forward(x)
        # (x^T W)^T rather than W^T x: the weight stays contiguous, so autocast's cast of it and
        # the cast of its gradient back are plain streaming copies, not transposing ones
        cols = (x.reshape(n, c, h * w).transpose(1, 2) @ self.weight.reshape(c, -1)).transpose(1, 2)
        out = F.fold(cols, (out_h, out_w), (kh, kw), padding=(ph, pw), stride=(sh, sw))
        return out if self.bias is None else out + self.bias.to(out.dtype).reshape(1, -1, 1, 1)
