"""The generator and discriminator of the CUT reference (``models/networks.py`` there): CycleGAN's
ResNet generator and PatchGAN, with anti-aliased down- and up-sampling by default.

Both are one flat ``nn.Sequential`` laid out as the reference lays them out, so the reference's
state dicts load with a plain ``load_state_dict`` (``model.1.weight``, ``model.7.filt``, ...) and a
generator layer index means what the reference's ``nce_layers`` mean: layer ``i`` is the output of
``model[i]``.  With the defaults the generator's layers are 0 (the reflect-padded input), 1-3 the
7x7 convolution, 4-7 and 8-11 the two down-sampling stages (convolution, norm, ReLU, blur-pool),
12-20 the residual blocks, then the up-sampling stages and the output convolution; PatchNCE uses
layers 0, 4, 8, 12 and 16.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from imgtrans.api import Discriminator, Generator, InstanceNorm2d

from .layers import BlurDown, BlurUp

NORMS = ("instance", "batch", "none")
INITS = ("xavier", "normal")
_CONSTRAINTS: dict[str, dict[str, Any]] = {"in_channels": {"min": 1}, "norm": {"choices": NORMS},
                                           "init": {"choices": INITS}}


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return InstanceNorm2d(channels, affine=False, track_running_stats=False)  # keeps channels-last
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {', '.join(NORMS)}, not {kind!r}")


def initialise(net: nn.Module, init: str = "xavier", gain: float = 0.02) -> None:
    """The reference's initialisation: convolution and linear weights xavier-normal (or N(0, gain))
    with gain 0.02, biases 0; batch-norm weights N(1, gain), biases 0."""
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}, not {init!r}")
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if init == "xavier":
                nn.init.xavier_normal_(m.weight, gain=gain)
            else:
                nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)


class ResidualBlock(nn.Module):
    """Reflect-pad, 3x3 convolution, norm, ReLU, (dropout), reflect-pad, 3x3 convolution, norm; plus the input."""

    def __init__(self, dim: int, norm: str, dropout: bool, bias: bool):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), _norm(norm, dim),
                                   nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), _norm(norm, dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class CutResnetGenerator(Generator):
    """ResNet generator of CUT: two down-samplings, residual blocks, two up-samplings, anti-aliased.

    Args:
        in_channels: channels of the input images.
        out_channels: channels of the output images.
        ngf: channels of the first convolution (doubled by each down-sampling).
        n_blocks: residual blocks at the lowest resolution.
        norm: instance (the reference's), batch or none.
        dropout: dropout in the residual blocks (off in the reference).
        antialias: blur-pool down-sampling (the reference's default); off: stride-2 convolutions.
        antialias_up: blur up-sampling then a 3x3 convolution (the reference's default); off:
            transposed convolutions.
        init: weight initialisation, xavier (the reference's) or normal, gain 0.02.
    """

    arg_constraints: ClassVar[dict[str, dict[str, Any]]] = {
        **_CONSTRAINTS, "out_channels": {"min": 1}, "ngf": {"min": 1}, "n_blocks": {"min": 0}}
    reference_args: ClassVar[dict[str, Any]] = {"norm": "instance", "dropout": False}
    n_downsampling = 2

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, n_blocks: int = 9,
                 norm: str = "instance", dropout: bool = False, antialias: bool = True, antialias_up: bool = True,
                 init: str = "xavier"):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stride = 2 ** self.n_downsampling
        bias = norm == "instance"
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=bias),
                                   _norm(norm, ngf), nn.ReLU(True)]
        down_starts = []
        for i in range(self.n_downsampling):
            cin, cout = ngf * 2 ** i, ngf * 2 ** (i + 1)
            down_starts.append(len(layers))
            if antialias:
                layers += [nn.Conv2d(cin, cout, 3, stride=1, padding=1, bias=bias), _norm(norm, cout), nn.ReLU(True),
                           BlurDown(cout)]
            else:
                layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=bias), _norm(norm, cout), nn.ReLU(True)]
        first_block = len(layers)
        dim = ngf * 2 ** self.n_downsampling
        layers += [ResidualBlock(dim, norm, dropout, bias) for _ in range(n_blocks)]
        for i in range(self.n_downsampling):
            cin = ngf * 2 ** (self.n_downsampling - i)
            cout = cin // 2
            if antialias_up:
                layers += [BlurUp(cin), nn.Conv2d(cin, cout, 3, stride=1, padding=1, bias=bias)]
            else:
                layers += [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1, bias=bias)]
            layers += [_norm(norm, cout), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        # the padded input, the convolution of each down-sampling stage, residual blocks 1 and 5:
        # with the defaults exactly the reference's nce_layers 0, 4, 8, 12, 16
        self.encoder_layers = (0, *down_starts, *(first_block + j for j in (0, 4) if j < n_blocks))
        initialise(self, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def encode(self, x: torch.Tensor, layers: Sequence[int] | None = None) -> list[torch.Tensor]:
        """Layer ``i`` is the output of ``model[i]`` (the reference's ``nce_layers``; default 0, 4, 8, 12, 16)."""
        return self.encode_sequential(self.model, x, layers)


class CutResnet9Blocks(CutResnetGenerator):
    """CUT's generator: ResNet with 9 residual blocks and anti-aliased sampling (11.4 M parameters).

    Args:
        in_channels: channels of the input images.
        out_channels: channels of the output images.
        ngf: channels of the first convolution (doubled by each down-sampling).
        norm: instance (the reference's), batch or none.
        dropout: dropout in the residual blocks (off in the reference).
        antialias: blur-pool down-sampling (the reference's default); off: stride-2 convolutions.
        antialias_up: blur up-sampling then a 3x3 convolution (the reference's default); off:
            transposed convolutions.
        init: weight initialisation, xavier (the reference's) or normal, gain 0.02.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, norm: str = "instance",
                 dropout: bool = False, antialias: bool = True, antialias_up: bool = True, init: str = "xavier"):
        super().__init__(in_channels, out_channels, ngf, 9, norm, dropout, antialias, antialias_up, init)


class CutPatchGAN(Discriminator):
    """CUT's discriminator: the 70x70 PatchGAN with blur-pool down-sampling (unconditional, 3 channels).

    Args:
        in_channels: channels of the images it judges.
        ndf: channels of the first convolution.
        n_layers: down-sampling stages (3: 70x70 patches).
        norm: instance (the reference's), batch or none.
        antialias: stride-1 convolutions followed by blur-pools (the reference's default); off:
            stride-2 convolutions (CycleGAN's PatchGAN).
        init: weight initialisation, xavier (the reference's) or normal, gain 0.02.
    """

    arg_constraints: ClassVar[dict[str, dict[str, Any]]] = {**_CONSTRAINTS, "ndf": {"min": 1},
                                                            "n_layers": {"min": 1}}

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance",
                 antialias: bool = True, init: str = "xavier"):
        super().__init__()
        self.in_channels = in_channels
        bias = norm == "instance"
        if antialias:
            layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=1, padding=1), nn.LeakyReLU(0.2, True),
                                       BlurDown(ndf)]
        else:
            layers = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2 ** n, 8)
            conv = nn.Conv2d(ndf * prev, ndf * mult, 4, stride=1 if antialias else 2, padding=1, bias=bias)
            layers += [conv, _norm(norm, ndf * mult), nn.LeakyReLU(0.2, True)]
            if antialias:
                layers.append(BlurDown(ndf * mult))
        prev, mult = mult, min(2 ** n_layers, 8)
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=1, padding=1, bias=bias), _norm(norm, ndf * mult),
                   nn.LeakyReLU(0.2, True), nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1)]
        self.model = nn.Sequential(*layers)
        initialise(self, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
