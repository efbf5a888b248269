"""Normalisation choice, up-sampling choice and weight initialisation shared by the pix2pix networks."""
from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn

from imgtrans.api import InstanceNorm2d

NORMS = ("batch", "instance", "none")
#: how the generators up-sample (``upsample`` argument).  ``transpose``: the reference's transposed
#: convolutions (its weights load; parameter counts and state-dict keys are the reference's).
#: ``resize`` / ``bilinear``: nearest-neighbour / bilinear 2x resize then a 3x3 convolution
#: (resize-convolution, Odena et al. 2016, "Deconvolution and Checkerboard Artifacts"): every
#: output pixel sees the same number of kernel taps, so no checkerboard pattern.  ``pixelshuffle``:
#: a 3x3 convolution to 4x the channels then a pixel shuffle (Shi et al. 2016), initialised by ICNR
#: (Aitken et al. 2017) so that it starts as a resize-convolution.
UPSAMPLES = ("transpose", "resize", "bilinear", "pixelshuffle")
#: argument constraints every pix2pix network shares (``arg_constraints``, checked when a config is resolved)
NETWORK_CONSTRAINTS = {"in_channels": {"min": 1}, "out_channels": {"min": 1}, "norm": {"choices": NORMS}}
#: the constraint of the generators' ``upsample`` argument
UPSAMPLE_CONSTRAINT = {"choices": UPSAMPLES}


def norm_layer(norm: str) -> Callable[[int], nn.Module]:
    """The reference's three choices.  Instance norm has no affine parameters and no running stats."""
    if norm == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if norm == "instance":
        return functools.partial(InstanceNorm2d, affine=False, track_running_stats=False)
    if norm == "none":
        return lambda channels: nn.Identity()
    raise ValueError(f"norm must be one of {', '.join(NORMS)}, not {norm!r}")


def conv_bias(norm: str) -> bool:
    """Whether convolutions followed by a norm carry a bias.

    As in the reference: only with instance norm (batch norm's shift makes a bias redundant).
    The reference also leaves it off for ``none``; we keep that so its checkpoints load.
    """
    return norm == "instance"


class ResizeConv(nn.Sequential):
    """2x resize (``nearest`` or ``bilinear``) followed by a 3x3 convolution that keeps the size."""

    def __init__(self, in_channels: int, out_channels: int, mode: str = "nearest", bias: bool = True,
                 conv: type[nn.Conv2d] = nn.Conv2d):
        resize = (nn.Upsample(scale_factor=2, mode=mode) if mode == "nearest"
                  else nn.Upsample(scale_factor=2, mode=mode, align_corners=False))
        super().__init__(resize, conv(in_channels, out_channels, 3, padding=1, bias=bias))


class PixelShuffleConv(nn.Sequential):
    """A 3x3 convolution to 4x the channels, then a 2x pixel shuffle (sub-pixel convolution)."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True, conv: type[nn.Conv2d] = nn.Conv2d):
        super().__init__(conv(in_channels, out_channels * 4, 3, padding=1, bias=bias), nn.PixelShuffle(2))

    @torch.no_grad()
    def icnr_(self) -> None:
        """ICNR: the four sub-pixel kernels of each output channel start equal (and so do their
        biases), which makes the layer a nearest-neighbour resize-convolution at initialisation."""
        conv = self[0]
        out = conv.out_channels // 4
        conv.weight.copy_(conv.weight[:out].repeat_interleave(4, dim=0))  # channel c*4+k -> output c
        if conv.bias is not None:
            conv.bias.copy_(conv.bias[:out].repeat_interleave(4))


def upsample_layer(upsample: str, in_channels: int, out_channels: int, bias: bool,
                   transpose: Callable[[], nn.Module], conv: type[nn.Conv2d] = nn.Conv2d) -> nn.Module:
    """One 2x up-sampling layer; ``transpose`` builds the reference's transposed convolution, so the
    default stays exactly the reference layer.  One module whatever the choice, so the modules
    around it keep their indices (and the reference's state-dict keys)."""
    if upsample == "transpose":
        return transpose()
    if upsample in ("resize", "bilinear"):
        return ResizeConv(in_channels, out_channels, "nearest" if upsample == "resize" else "bilinear", bias, conv)
    if upsample == "pixelshuffle":
        return PixelShuffleConv(in_channels, out_channels, bias, conv)
    raise ValueError(f"upsample must be one of {', '.join(UPSAMPLES)}, not {upsample!r}")


def init_weights(net: nn.Module, gain: float = 0.02) -> None:
    """Reference 'normal' init: conv weights N(0, gain), biases 0; batch-norm weights N(1, gain), biases 0.
    Pixel-shuffle layers then get ICNR (:meth:`PixelShuffleConv.icnr_`) from those weights."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    for m in net.modules():
        if isinstance(m, PixelShuffleConv):
            m.icnr_()
