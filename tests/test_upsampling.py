"""The generators' ``upsample`` option: the reference's transposed convolutions by default (their
exact layout is tests/test_components.py's job), resize-convolution or pixel shuffle on request,
which start free of the checkerboard pattern that transposed convolutions draw."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from imgtrans_pix2pix.layers import UPSAMPLES, init_weights, upsample_layer
from torch import nn

import imgtrans
from imgtrans.core.config import resolve
from imgtrans.util.errors import ConfigError

CLEAN = [mode for mode in UPSAMPLES if mode != "transpose"]
#: tiny versions of every generator family with an ``upsample`` option
TINY_NETS = {"unet": {"num_downs": 5, "ngf": 4}, "unet_128": {"ngf": 2}, "unet_256": {"ngf": 2},
             "resnet_6blocks": {"ngf": 4}, "resnet_9blocks": {"ngf": 4}}


def _interior_spread(layer: nn.Module, channels: int) -> float:
    """Spread of the layer's output on a constant input, away from the zero-padded border."""
    with torch.no_grad():
        y = layer(torch.full((1, channels, 8, 8), 0.5))
    inner = y[:, :, 4:-4, 4:-4]
    return float((inner - inner.mean(dim=(2, 3), keepdim=True)).abs().max())


@pytest.mark.parametrize("mode", UPSAMPLES)
def test_only_transposed_convolution_draws_a_checkerboard_at_initialisation(mode: str) -> None:
    torch.manual_seed(0)
    holder = nn.Module()
    holder.up = upsample_layer(mode, 8, 4, True, lambda: nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1))
    init_weights(holder)  # as the generators initialise it (ICNR for pixel shuffle)
    spread = _interior_spread(holder.up, 8)
    if mode == "transpose":
        assert spread > 1e-3  # each output phase sums different kernel taps: a period-2 pattern
    else:
        assert spread < 1e-6


@pytest.mark.parametrize("mode", CLEAN)
@pytest.mark.parametrize("name", sorted(TINY_NETS))
def test_every_generator_builds_and_runs_with_each_upsampling(name: str, mode: str, registry) -> None:
    gen = registry.create("generator", name, upsample=mode, **TINY_NETS[name])
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in gen.modules())
    side = gen.stride * max(1, 32 // gen.stride)
    x = torch.rand(1, 3, side, side) * 2 - 1
    gen.eval()
    with torch.no_grad():
        y = gen(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    reference = registry.create("generator", name, **TINY_NETS[name])
    assert gen.state_dict().keys() != reference.state_dict().keys()  # not the reference layout: stated, not hidden


def test_the_default_is_the_reference_layer(registry) -> None:
    default = registry.create("generator", "unet", num_downs=5, ngf=4)
    explicit = registry.create("generator", "unet", num_downs=5, ngf=4, upsample="transpose")
    assert [(k, v.shape) for k, v in default.state_dict().items()] == \
        [(k, v.shape) for k, v in explicit.state_dict().items()]
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in default.modules()) == 5


def test_a_bad_choice_is_a_one_line_config_error(registry) -> None:
    with pytest.raises(ConfigError, match="generator.upsample must be one of transpose, resize, bilinear, "
                                          "pixelshuffle, got 'deconv'"):
        resolve("pix2pix", registry, [{"generator": {"upsample": "deconv"}, "data": {"source": "x"}}])


def test_a_model_trained_with_resize_convolution_loads_from_its_file(registry, aligned_dir: Path, tmp_path) -> None:
    tiny = registry.get("recipe", "pix2pix").factory.tiny_config
    config = resolve("pix2pix", registry, [tiny, {"generator": {"upsample": "resize"},
                                                  "data": {"source": str(aligned_dir)}, "optim": {"max_steps": 2},
                                                  "run": {"out": str(tmp_path / "run"), "progress": False}}])
    imgtrans.train(config)
    model = imgtrans.load_model(str(tmp_path / "run" / "model.safetensors"))
    assert model.info["generator"]["upsample"] == "resize"
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in model.generator.modules())
