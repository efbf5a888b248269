"""ResNet generator of CycleGAN (the reference's ``ResnetGenerator``), built layer for layer as the
reference does so that public CycleGAN weights load with a plain ``load_state_dict``.

Layout (``self.model``, a flat Sequential): reflect-pad 3, 7x7 conv, norm, ReLU; two stride-2 3x3
convs, each with norm and ReLU; ``n_blocks`` residual blocks; two stride-2 transposed convs, each
with norm and ReLU; reflect-pad 3, 7x7 conv (with bias), Tanh.  With the defaults the state-dict
keys are ``model.1``, ``model.4``, ``model.7``, ``model.10.conv_block.1`` ... ``model.26``.

As in the reference, ``padding`` only affects the residual blocks: the two 7x7 convs are always
preceded by a reflection pad.  With ``padding="zero"`` the blocks have no pad layer (the convs pad
by 1 themselves), so their inner indices shift exactly as in the reference (``conv_block.0``,
``conv_block.3``).
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import nn

from imgtrans.api import Generator

from .layers import NETWORK_CONSTRAINTS, UPSAMPLE_CONSTRAINT, conv_bias, init_weights, norm_layer, upsample_layer

PADDINGS = ("reflect", "replicate", "zero")


def _pad_layer(padding: str, size: int) -> list[nn.Module]:
    if padding == "reflect":
        return [nn.ReflectionPad2d(size)]
    if padding == "replicate":
        return [nn.ReplicationPad2d(size)]
    if padding == "zero":
        return []
    raise ValueError(f"padding must be one of {', '.join(PADDINGS)}, not {padding!r}")


class ResnetBlock(nn.Module):
    """Two 3x3 convs with norm (ReLU and optional dropout between them) plus an identity shortcut."""

    def __init__(self, dim: int, padding: str = "reflect", norm: str = "instance", dropout: bool = False,
                 bias: bool | None = None):
        super().__init__()
        make_norm = norm_layer(norm)
        bias = conv_bias(norm) if bias is None else bias
        p = 1 if padding == "zero" else 0
        layers: list[nn.Module] = [*_pad_layer(padding, 1), nn.Conv2d(dim, dim, 3, padding=p, bias=bias),
                                   make_norm(dim), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [*_pad_layer(padding, 1), nn.Conv2d(dim, dim, 3, padding=p, bias=bias), make_norm(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(Generator):
    """ResNet generator of CycleGAN: two stride-2 downsamplings, ``n_blocks`` residual blocks, two upsamplings.

    ``upsample`` chooses the up-sampling layers as for the U-Net: the reference's transposed
    convolutions by default, or resize-convolutions / pixel shuffle.

    Args:
        in_channels: channels of the input images.
        out_channels: channels of the output images.
        ngf: channels of the first convolution (doubled by each down-sampling).
        norm: normalisation layers: instance (the reference's), batch or none.
        dropout: dropout 0.5 inside each residual block.
        n_blocks: residual blocks at the lowest resolution.
        padding: padding of the 3x3 convolutions: reflect (the reference's), replicate or zero.
        upsample: transpose (the reference's), resize or bilinear (resize-convolution) or
            pixelshuffle.
    """

    n_downsampling = 2
    arg_constraints = {**NETWORK_CONSTRAINTS, "ngf": {"min": 1}, "n_blocks": {"min": 0},
                       "padding": {"choices": PADDINGS}, "upsample": UPSAMPLE_CONSTRAINT}

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, norm: str = "instance",
                 dropout: bool = False, n_blocks: int = 9, padding: str = "reflect", upsample: str = "transpose"):
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be at least 0, got {n_blocks}")
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {', '.join(PADDINGS)}, not {padding!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stride = 2 ** self.n_downsampling
        make_norm, bias = norm_layer(norm), conv_bias(norm)

        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, padding=0, bias=bias),
                                   make_norm(ngf), nn.ReLU(True)]
        for i in range(self.n_downsampling):
            mult = 2 ** i
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=bias),
                       make_norm(ngf * mult * 2), nn.ReLU(True)]
        mult = 2 ** self.n_downsampling
        layers += [ResnetBlock(ngf * mult, padding=padding, norm=norm, dropout=dropout, bias=bias)
                   for _ in range(n_blocks)]
        for i in range(self.n_downsampling):
            mult = 2 ** (self.n_downsampling - i)
            cin, cout = ngf * mult, ngf * mult // 2
            transpose = functools.partial(nn.ConvTranspose2d, cin, cout, 3, stride=2, padding=1, output_padding=1,
                                          bias=bias)
            layers += [upsample_layer(upsample, cin, cout, bias, transpose), make_norm(cout), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        # encoder features for feature losses: the padded input, both down-sampling convolutions, the
        # first and the fifth residual block: where CUT's reference takes its layers 0, 4, 8, 12, 16
        first_block = 4 + 3 * self.n_downsampling
        self.encoder_layers = (0, 4, 7, *(first_block + j for j in (0, 4) if j < n_blocks))
        # its 64x64 residual convolutions, the 7x7 ones and the transposed ones all ran faster in
        # channels-last on the CPU once instance norm kept that layout (imgtrans.api.InstanceNorm2d)
        self.channels_last_on_cpu = True
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def encode(self, x: torch.Tensor, layers: Sequence[int] | None = None) -> list[torch.Tensor]:
        """Layer ``i`` is the output of ``model[i]``: 0 the padded input, 4 and 7 the two stride-2
        convolutions, 10 onwards the residual blocks (default: 0, 4, 7, 10, 14)."""
        return self.encode_sequential(self.model, x, layers)


class Resnet9Blocks(ResnetGenerator):
    """ResNet generator with 9 residual blocks, CycleGAN's generator for 256x256 images."""

    reference_args = {"norm": "instance", "dropout": False}  # the public CycleGAN weights

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, norm: str = "instance",
                 dropout: bool = False, padding: str = "reflect", upsample: str = "transpose"):
        super().__init__(in_channels, out_channels, ngf, norm, dropout, 9, padding, upsample)


class Resnet6Blocks(ResnetGenerator):
    """ResNet generator with 6 residual blocks, CycleGAN's generator for 128x128 images."""

    reference_args = {"norm": "instance", "dropout": False}  # the public CycleGAN weights

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, norm: str = "instance",
                 dropout: bool = False, padding: str = "reflect", upsample: str = "transpose"):
        super().__init__(in_channels, out_channels, ngf, norm, dropout, 6, padding, upsample)
