"""Learning-rate schedules."""
from __future__ import annotations

import torch


def linear_decay(optimizer: torch.optim.Optimizer, epochs: int, epochs_decay: int,
                 epoch_count: int = 1) -> torch.optim.lr_scheduler.LambdaLR:
    """The reference 'linear' policy: constant for ``epochs``, then linearly to (almost) zero over
    ``epochs_decay``.  Stepped once per epoch; ``epoch_count`` is the reference's 1-based start."""

    def factor(epoch: int) -> float:
        return 1.0 - max(0, epoch + epoch_count - epochs) / float(epochs_decay + 1)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
