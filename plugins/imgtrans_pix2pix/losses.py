"""Adversarial losses on logits (targets 1 for real, 0 for fake) and the L1 reconstruction loss."""
from __future__ import annotations

import torch
from torch import nn

from imgtrans.api import Loss


class _AdversarialLoss(Loss):
    role = "adversarial"
    criterion: nn.Module

    def forward(self, logits: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        target = torch.ones_like(logits) if target_is_real else torch.zeros_like(logits)
        return self.criterion(logits, target)


class BCEGANLoss(_AdversarialLoss):
    """The paper's 'vanilla' GAN loss: binary cross-entropy on logits."""

    def __init__(self) -> None:
        super().__init__()
        self.criterion = nn.BCEWithLogitsLoss()


class LSGANLoss(_AdversarialLoss):
    """Least-squares GAN loss (mean squared error on the raw scores)."""

    def __init__(self) -> None:
        super().__init__()
        self.criterion = nn.MSELoss()


class L1Loss(Loss):
    """Mean absolute error between prediction and target."""

    role = "pixel"

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.l1_loss(prediction, target)
