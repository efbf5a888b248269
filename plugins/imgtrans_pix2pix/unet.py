"""U-Net generator of pix2pix, built recursively exactly as the reference implementation does.

The module nesting (``model.model.1.model.3...``) and the layer order inside every block match
the public checkpoints key for key, so reference weights load with a plain ``load_state_dict``.

Note on the skip connections: like the reference, each inner block starts with an *in-place*
LeakyReLU, so the tensor concatenated on the skip path is the activated input.  Keeping this
quirk is what makes outputs identical to the reference's for the same weights.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from imgtrans.api import Generator

from .im2col import Conv2d, ConvTranspose2d
from .layers import NETWORK_CONSTRAINTS, UPSAMPLE_CONSTRAINT, conv_bias, init_weights, norm_layer, upsample_layer


class UnetSkipBlock(nn.Module):
    """One level of the U-Net: down-sample, the inner levels, up-sample, concatenate with the input."""

    def __init__(self, outer_nc: int, inner_nc: int, input_nc: int | None = None,
                 submodule: nn.Module | None = None, outermost: bool = False, innermost: bool = False,
                 norm: str = "batch", dropout: bool = False, upsample: str = "transpose"):
        super().__init__()
        self.outermost, self.innermost = outermost, innermost
        make_norm, bias = norm_layer(norm), conv_bias(norm)
        input_nc = outer_nc if input_nc is None else input_nc
        down_conv = Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=bias)

        def up(channels: int, up_bias: bool) -> nn.Module:
            return upsample_layer(upsample, channels, outer_nc, up_bias, conv=Conv2d, transpose=lambda: ConvTranspose2d(
                channels, outer_nc, kernel_size=4, stride=2, padding=1, bias=up_bias))

        if outermost:
            up_conv = up(inner_nc * 2, True)
            layers = [down_conv, submodule, nn.ReLU(True), up_conv, nn.Tanh()]
        elif innermost:
            up_conv = up(inner_nc, bias)
            layers = [nn.LeakyReLU(0.2, True), down_conv, nn.ReLU(True), up_conv, make_norm(outer_nc)]
        else:
            up_conv = up(inner_nc * 2, bias)
            layers = [nn.LeakyReLU(0.2, True), down_conv, make_norm(inner_nc), submodule,
                      nn.ReLU(True), up_conv, make_norm(outer_nc)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(Generator):
    """U-Net with ``num_downs`` stride-2 levels: input sides must be multiples of ``2 ** num_downs``.

    ``upsample`` chooses the decoder's up-sampling layers (``layers.UPSAMPLES``): the reference's
    transposed convolutions by default, or resize-convolutions / pixel shuffle, which avoid the
    checkerboard artefacts transposed convolutions are known for.

    Args:
        in_channels: channels of the input images.
        out_channels: channels of the output images.
        num_downs: stride-2 levels; input sides must be multiples of 2 ** num_downs.
        ngf: channels of the outermost level (inner levels double it, up to 8x).
        norm: normalisation layers: batch, instance or none.
        dropout: dropout 0.5 in the 512-wide levels next to the bottleneck (the reference's).
        upsample: transpose (the reference's), resize or bilinear (resize-convolution) or
            pixelshuffle.
    """

    arg_constraints = {**NETWORK_CONSTRAINTS, "ngf": {"min": 1}, "num_downs": {"min": 5},
                       "upsample": UPSAMPLE_CONSTRAINT}

    def __init__(self, in_channels: int = 3, out_channels: int = 3, num_downs: int = 8, ngf: int = 64,
                 norm: str = "batch", dropout: bool = True, upsample: str = "transpose"):
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"num_downs must be at least 5, got {num_downs}")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, 2 ** num_downs
        self.num_downs = num_downs
        self.encoder_layers = (0, 1, 2, 3, 4)  # the five outer levels (256 px: 128 down to 8 px)
        level = functools.partial(UnetSkipBlock, norm=norm, upsample=upsample)
        block = level(ngf * 8, ngf * 8, innermost=True)
        for _ in range(num_downs - 5):  # the 512-wide levels next to the bottleneck carry dropout
            block = level(ngf * 8, ngf * 8, submodule=block, dropout=dropout)
        block = level(ngf * 4, ngf * 8, submodule=block)
        block = level(ngf * 2, ngf * 4, submodule=block)
        block = level(ngf, ngf * 2, submodule=block)
        self.model = level(out_channels, ngf, input_nc=in_channels, submodule=block, outermost=True)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def encode(self, x: torch.Tensor, layers: Sequence[int] | None = None) -> list[torch.Tensor]:
        """Layer ``i`` is the output of down level ``i`` (its stride-2 convolution, then its norm),
        ``0 .. num_downs - 1``: at 256 px, level 0 is 128 px wide with ``ngf`` channels."""
        chosen = self.chosen_layers(layers, self.num_downs)
        last, found = max(chosen), {}
        block: UnetSkipBlock = self.model
        for level in range(last + 1):
            seq = block.model
            if block.outermost:  # down: conv
                x, inner = seq[0](x), seq[1]
            elif block.innermost:  # down: LeakyReLU, conv
                x, inner = seq[1](F.leaky_relu(x, 0.2)), None
            else:  # down: LeakyReLU, conv, norm (forward's LeakyReLU is in place; here it is not)
                x, inner = seq[2](seq[1](F.leaky_relu(x, 0.2))), seq[3]
            found[level] = x
            if inner is None:
                break
            block = inner
        return [found[i] for i in chosen]


class Unet256(UnetGenerator):
    """U-Net-256 (8 levels, 256x256 -> 1x1), the pix2pix paper's generator."""

    reference_args = {"norm": "batch", "dropout": True}  # the public pix2pix weights

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, norm: str = "batch",
                 dropout: bool = True, upsample: str = "transpose"):
        super().__init__(in_channels, out_channels, 8, ngf, norm, dropout, upsample)


class Unet128(UnetGenerator):
    """U-Net-128 (7 levels), for 128x128 images."""

    reference_args = {"norm": "batch", "dropout": True}

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, norm: str = "batch",
                 dropout: bool = True, upsample: str = "transpose"):
        super().__init__(in_channels, out_channels, 7, ngf, norm, dropout, upsample)
