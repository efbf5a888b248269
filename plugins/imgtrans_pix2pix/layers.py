"""Normalisation choice and weight initialisation shared by the pix2pix networks."""
from __future__ import annotations

import functools
from collections.abc import Callable

from torch import nn

NORMS = ("batch", "instance", "none")
#: argument constraints every pix2pix network shares (``arg_constraints``, checked when a config is resolved)
NETWORK_CONSTRAINTS = {"in_channels": {"min": 1}, "out_channels": {"min": 1}, "norm": {"choices": NORMS}}


def norm_layer(norm: str) -> Callable[[int], nn.Module]:
    """The reference's three choices.  Instance norm has no affine parameters and no running stats."""
    if norm == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if norm == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if norm == "none":
        return lambda channels: nn.Identity()
    raise ValueError(f"norm must be one of {', '.join(NORMS)}, not {norm!r}")


def conv_bias(norm: str) -> bool:
    """Whether convolutions followed by a norm carry a bias.

    As in the reference: only with instance norm (batch norm's shift makes a bias redundant).
    The reference also leaves it off for ``none``; we keep that so its checkpoints load.
    """
    return norm == "instance"


def init_weights(net: nn.Module, gain: float = 0.02) -> None:
    """Reference 'normal' init: conv weights N(0, gain), biases 0; batch-norm weights N(1, gain), biases 0."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
