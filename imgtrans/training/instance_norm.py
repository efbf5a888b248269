"""Instance norm that keeps a channels-last feature map channels-last while it trains (offered to
networks through :mod:`imgtrans.api`).

Why: PyTorch computes instance norm as batch norm over one batch of ``N * C`` channels, reached
through ``.contiguous()``, so a channels-last (NHWC) map comes out NCHW, and the next convolution
and every backward step around it copy it back.  On the CPU those copies cost more than NHWC
saved: a bf16 CycleGAN step on a 2-core AMX Xeon took 3.10-3.31 s with this layer against
3.87-4.11 s with PyTorch's and the networks kept NCHW, and a CUT step 2.81-2.92 s against
3.69-3.75 s (docs/training.md, "Speed and precision").  Batch norm of one image, without running
statistics, is that image's instance norm and keeps the layout, so each image goes through it on
its own.  The arithmetic is the same up to summation order and the state dict is PyTorch's; in
eval mode, on NCHW input, or with running statistics it is PyTorch's own path, so exported
graphs and inference are unchanged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class InstanceNorm2d(nn.InstanceNorm2d):
    """Drop-in ``nn.InstanceNorm2d`` whose training forward keeps channels-last input channels-last."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (not self.training or self.track_running_stats or x.dim() != 4 or x.is_contiguous()
                or not x.is_contiguous(memory_format=torch.channels_last)):
            return super().forward(x)
        images = [F.batch_norm(x[i:i + 1], None, None, self.weight, self.bias, True, 0.0, self.eps)
                  for i in range(x.shape[0])]
        return images[0] if len(images) == 1 else torch.cat(images)
