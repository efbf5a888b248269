"""Channels-last training: which networks the trainer puts in NHWC, and that a network computes the
same in NHWC as in NCHW (values and gradients), the layout surviving its instance norms."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import imgtrans
from imgtrans.api import InstanceNorm2d
from imgtrans.core.config import resolve
from imgtrans.training.step_engine import wants_channels_last

CL = torch.channels_last


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("affine", [False, True])
def test_instance_norm_keeps_channels_last_and_equals_pytorchs(batch: int, affine: bool) -> None:
    torch.manual_seed(0)
    ours, theirs = InstanceNorm2d(5, affine=affine), nn.InstanceNorm2d(5, affine=affine)
    if affine:
        with torch.no_grad():
            ours.weight.normal_()
            ours.bias.normal_()
        theirs.load_state_dict(ours.state_dict())
    x = torch.randn(batch, 5, 6, 7) * 3 + 1
    x_cl = x.contiguous(memory_format=CL).requires_grad_(True)
    x_ref = x.clone().requires_grad_(True)
    out, expected = ours(x_cl), theirs(x_ref)
    assert out.is_contiguous(memory_format=CL) and not out.is_contiguous()
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    grad = torch.randn_like(expected)
    out.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(x_cl.grad, x_ref.grad, atol=1e-5, rtol=1e-4)
    if affine:
        torch.testing.assert_close(ours.weight.grad, theirs.weight.grad, atol=1e-4, rtol=1e-4)
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_instance_norm_in_eval_is_pytorchs() -> None:
    x = torch.randn(2, 4, 5, 5).contiguous(memory_format=CL)
    norm = InstanceNorm2d(4).eval()
    torch.testing.assert_close(norm(x), nn.functional.instance_norm(x))


def test_resnet_generator_computes_the_same_in_channels_last() -> None:
    torch.manual_seed(0)
    net = imgtrans.create_generator("resnet_6blocks", ngf=8)
    net_cl = imgtrans.create_generator("resnet_6blocks", ngf=8).to(memory_format=CL)
    net_cl.load_state_dict(net.state_dict())
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    out, out_cl = net(x), net_cl(x.contiguous(memory_format=CL))
    assert out_cl.is_contiguous(memory_format=CL)
    torch.testing.assert_close(out_cl, out, atol=1e-5, rtol=1e-4)
    grad = torch.randn_like(out)
    out.backward(grad)
    out_cl.backward(grad)
    scale = max(float(p.grad.abs().max()) for p in net.parameters())
    for (name, p), p_cl in zip(net.named_parameters(), net_cl.parameters()):
        # a bias just before an instance norm has a gradient of exactly 0 in exact arithmetic,
        # so its values are rounding noise: judge every gradient against the largest one
        difference = float((p_cl.grad - p.grad).abs().max())
        assert difference <= 1e-5 * scale, f"{name}: gradients differ by {difference:.2e} (largest {scale:.2e})"


def test_auto_puts_on_the_cpu_in_channels_last_what_the_networks_declare(registry) -> None:
    config = resolve("cyclegan", registry, [{"data": {"source": "x"}}])
    cpu = torch.device("cpu")
    resnet = imgtrans.create_generator("resnet_9blocks", ngf=4)
    unet = imgtrans.create_generator("unet_256", ngf=4)
    patchgan = imgtrans.create_discriminator("patchgan_70", ndf=4)
    assert resnet.channels_last_on_cpu is True and wants_channels_last(resnet, config, cpu)
    assert not wants_channels_last(unet, config, cpu)  # transposed convolutions, nothing declared
    assert wants_channels_last(patchgan, config, cpu)
    resnet.channels_last_on_cpu = False
    assert not wants_channels_last(resnet, config, cpu)
    config.run.channels_last = "on"
    assert wants_channels_last(resnet, config, cpu) and wants_channels_last(unet, config, cpu)
    config.run.channels_last = "off"
    assert not wants_channels_last(patchgan, config, cpu)
