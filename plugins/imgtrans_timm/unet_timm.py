"""A U-Net whose encoder is any timm feature backbone.

Why: a pretrained encoder gives a translation model features it could not learn from a few
hundred pairs, and timm has hundreds of them behind one interface.  The decoder upsamples with
nearest-neighbour resizing followed by convolutions (no transposed convolutions, so no
checkerboard pattern), merging each encoder level's features on the way up; its last level merges
the input image itself, so fine detail that the encoder's first stride loses can still reach the
output.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from imgtrans.api import Generator

from .backbones import create_features, input_normalisation

NORMS = ("batch", "instance", "none")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


class DecoderBlock(nn.Module):
    """Resize to the skip's size, concatenate it, then two 3x3 convolution, norm, ReLU layers."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, norm: str):
        super().__init__()
        bias = norm != "batch"
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels + skip_channels, out_channels, 3, padding=1, bias=bias), _norm(norm, out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=bias), _norm(norm, out_channels),
            nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
        return self.layers(torch.cat([x, skip], 1))


class UnetTimm(Generator):
    """U-Net with a timm backbone as encoder (encoder=resnet18, any timm features_only model).

    Args:
        in_channels: channels of the input images.
        out_channels: channels of the output images.
        encoder: timm model name of the encoder (any model with features_only).
        pretrained: start the encoder from timm's pretrained weights (docs/backbones.md).
        decoder_channels: channels of the deepest decoder block (halved per level).
        norm: normalisation of the decoder: batch, instance or none.
    """

    arg_constraints: ClassVar[dict[str, dict]] = {
        "in_channels": {"min": 1}, "out_channels": {"min": 1}, "decoder_channels": {"min": 1},
        "norm": {"choices": NORMS}}
    #: saved weights replace the pretrained ones, so a model is rebuilt without fetching them
    rebuild_args: ClassVar[dict[str, bool]] = {"pretrained": False}

    def __init__(self, in_channels: int = 3, out_channels: int = 3, encoder: str = "resnet18",
                 pretrained: bool = False, decoder_channels: int = 256, norm: str = "batch"):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.encoder = create_features(encoder, in_channels=in_channels, pretrained=pretrained,
                                       what=f"generator 'unet_timm' encoder {encoder!r}")
        info = self.encoder.feature_info
        channels = list(info.channels())
        # twice the encoder's reduction: the deepest map is then at least 2 x 2, which batch-norm
        # backbones need to train at batch size 1 (pix2pix's default); inference pads to it anyway
        self.stride = 2 * int(max(info.reduction()))
        mean, std = input_normalisation(self.encoder, in_channels)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        # deepest level first: each block merges the next shallower level; the last one the input
        skips = channels[-2::-1] + [in_channels]
        widths = [max(1, decoder_channels >> i) for i in range(len(skips))]
        blocks, previous = [], channels[-1]
        for skip, width in zip(skips, widths):
            blocks.append(DecoderBlock(previous, skip, width, norm))
            previous = width
        self.decoder = nn.ModuleList(blocks)
        self.head = nn.Conv2d(previous, out_channels, 3, padding=1)
        self._encoder_widths = channels
        self.encoder_layers = tuple(range(len(channels)))  # every level the backbone returns

    def encode(self, x: torch.Tensor, layers: Sequence[int] | None = None) -> list[torch.Tensor]:
        """Layer ``i`` is the backbone's ``i``-th feature level (shallowest first)."""
        chosen = self.chosen_layers(layers, len(self._encoder_widths))
        features = self.encoder(((x + 1) / 2 - self.mean) / self.std)
        return [features[i] for i in chosen]

    def encoder_channels(self, layers: Sequence[int] | None = None) -> list[int]:
        """Declared by the backbone (``feature_info``): nothing is run."""
        return [self._encoder_widths[i] for i in self.chosen_layers(layers, len(self._encoder_widths))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(((x + 1) / 2 - self.mean) / self.std)
        y, skips = features[-1], features[-2::-1] + [x]
        for block, skip in zip(self.decoder, skips):
            y = block(y, skip)
        return torch.tanh(self.head(y))
