"""A perceptual (feature-matching) loss on a frozen timm backbone, as pix2pixHD uses with VGG.

Why a "pixel" loss that keeps an L1 term: pix2pix has one reconstruction slot (``pixel_loss``,
weighted by ``lambda_l1``).  Putting ``perceptual`` there keeps the paper's L1 term and adds the
feature term, so ``--set pixel_loss.name=perceptual`` is all it takes; at the defaults and
pix2pix's ``lambda_l1=100`` the generator loss is GAN + 100 L1 + 10 VGG, pix2pixHD's VGG weight
with the pix2pix paper's L1.  ``pixel_weight=0`` gives the feature term alone.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F

from imgtrans.api import ConfigError, Loss

from .backbones import create_features, input_normalisation

#: pix2pixHD's weights of VGG19's five feature levels, shallow to deep
PIX2PIXHD_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


class PerceptualLoss(Loss):
    """L1 between a frozen timm backbone's features of prediction and target, plus pixel L1.

    Args:
        backbone: timm model name of the frozen feature extractor.
        pretrained: use timm's pretrained weights (docs/backbones.md).
        layers: feature levels compared, shallowest 0.
        layer_weights: one weight per compared level.
        feature_weight: weight of the feature term.
        pixel_weight: weight of the pixel L1 term.
    """

    role = "pixel"
    arg_constraints: ClassVar[dict[str, dict]] = {"pixel_weight": {"min": 0}, "feature_weight": {"min": 0}}
    #: what the conformance kit builds it with: its default needs downloaded ImageNet weights
    conformance_args: ClassVar[dict] = {"backbone": "test_resnet", "pretrained": False}

    def __init__(self, backbone: str = "vgg19", pretrained: bool = True,
                 layers: Sequence[int] = (0, 1, 2, 3, 4), layer_weights: Sequence[float] = PIX2PIXHD_WEIGHTS,
                 feature_weight: float = 0.1, pixel_weight: float = 1.0):
        super().__init__()
        layers, layer_weights = [int(i) for i in layers], [float(w) for w in layer_weights]
        if not layers or len(layers) != len(layer_weights):
            raise ConfigError(f"loss 'perceptual' needs one weight per layer: layers {layers} has {len(layers)}, "
                              f"layer_weights {layer_weights} has {len(layer_weights)}")
        if any(w < 0 for w in layer_weights) or len(set(layers)) != len(layers) or min(layers) < 0:
            raise ConfigError(f"loss 'perceptual': layers must be distinct indices >= 0 and layer_weights >= 0, "
                              f"got layers {layers}, layer_weights {layer_weights}")
        what = f"loss 'perceptual' backbone {backbone!r}"
        with torch.device("meta"):  # counting the levels allocates nothing
            available = len(create_features(backbone, in_channels=3, pretrained=False, what=what).feature_info)
        if max(layers) >= available:
            raise ConfigError(f"{what} has {available} feature levels (0 to {available - 1}); layers {layers} "
                              "names one beyond them")
        order = sorted(range(len(layers)), key=lambda i: layers[i])  # timm returns levels shallow to deep
        self.layer_weights = [layer_weights[i] for i in order]
        self.backbone = create_features(backbone, in_channels=3, pretrained=pretrained, what=what,
                                        out_indices=tuple(layers[i] for i in order))
        self.backbone.eval().requires_grad_(False)
        mean, std = input_normalisation(self.backbone, 3)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        self.feature_weight, self.pixel_weight = feature_weight, pixel_weight

    def train(self, mode: bool = True) -> "PerceptualLoss":
        """The backbone stays in eval mode (fixed batch-norm statistics, no dropout) whatever the trainer asks."""
        super().train(mode)
        self.backbone.eval()
        return self

    def _features(self, images: torch.Tensor) -> list[torch.Tensor]:
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        elif images.shape[1] != 3:
            raise ConfigError(f"loss 'perceptual' compares 1- or 3-channel images, got {images.shape[1]} channels")
        return self.backbone(((images + 1) / 2 - self.mean) / self.std)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = self.pixel_weight * F.l1_loss(prediction, target) if self.pixel_weight else prediction.new_zeros(())
        if self.feature_weight:
            with torch.no_grad():
                wanted = self._features(target)
            got = self._features(prediction)
            features = sum(w * F.l1_loss(g, t) for w, g, t in zip(self.layer_weights, got, wanted))
            loss = loss + self.feature_weight * features
        return loss
