"""The U-Net's GEMM convolutions equal PyTorch's own, values and gradients, wherever they apply."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from imgtrans_pix2pix import im2col
from torch import nn


def _compare(module: nn.Module, reference, x: torch.Tensor) -> None:
    x1 = x.clone().requires_grad_(True)
    x2 = x.clone().requires_grad_(True)
    out = module(x1)
    expected = reference(x2)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)
    grad = torch.randn_like(out)
    out.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(x1.grad, x2.grad, atol=1e-5, rtol=1e-4)


CASES = [  # (layer, PyTorch's function, input sizes): maps from 1x1 to 32x32, GEMM and oneDNN paths
    (im2col.Conv2d, F.conv2d, [2, 4, 8, 16, 32]),
    (im2col.ConvTranspose2d, F.conv_transpose2d, [1, 2, 4, 8, 16]),
]


@pytest.mark.parametrize("layer,function,size", [(cls, fn, s) for cls, fn, sizes in CASES for s in sizes])
@pytest.mark.parametrize("batch,bias", [(1, False), (2, True)])
def test_matches_pytorch(layer, function, size: int, batch: int, bias: bool) -> None:
    torch.manual_seed(size)
    conv = layer(12, 10, kernel_size=4, stride=2, padding=1, bias=bias)
    x = torch.randn(batch, 12, size, size)
    if layer is im2col.Conv2d:
        uses_gemm = im2col._small(x, size // 2, size // 2, conv.weight)
        assert uses_gemm == (size // 2 * size // 2 <= im2col.MAX_GEMM_AREA)
    weight = conv.weight.detach().clone().requires_grad_(True)
    b = conv.bias.detach().clone().requires_grad_(True) if bias else None
    _compare(conv, lambda t: function(t, weight, b, stride=2, padding=1), x)
    torch.testing.assert_close(conv.weight.grad, weight.grad, atol=1e-5, rtol=1e-4)
    if bias:
        torch.testing.assert_close(conv.bias.grad, b.grad, atol=1e-5, rtol=1e-4)


def test_small_maps_take_the_gemm_path(monkeypatch) -> None:
    calls = []
    real_unfold, real_fold = F.unfold, F.fold
    monkeypatch.setattr(im2col.F, "unfold", lambda *a, **k: calls.append("unfold") or real_unfold(*a, **k))
    monkeypatch.setattr(im2col.F, "fold", lambda *a, **k: calls.append("fold") or real_fold(*a, **k))
    im2col.Conv2d(4, 4, 4, 2, 1)(torch.randn(1, 4, 8, 8))
    im2col.ConvTranspose2d(4, 4, 4, 2, 1)(torch.randn(1, 4, 4, 4))
    assert calls == ["unfold", "fold"]
    calls.clear()
    im2col.Conv2d(4, 4, 4, 2, 1)(torch.randn(1, 4, 64, 64))  # large map: oneDNN
    im2col.Conv2d(4, 4, 3, 1, 1, groups=2)(torch.randn(1, 4, 4, 4))  # grouped: parent class
    im2col.ConvTranspose2d(4, 4, 4, 2, 1, output_padding=1)(torch.randn(1, 4, 4, 4))
    with torch.no_grad():  # inference: oneDNN
        im2col.Conv2d(4, 4, 4, 2, 1)(torch.randn(1, 4, 8, 8))
    assert calls == []


def test_same_parameters_and_keys_as_pytorch_layers() -> None:
    ours, theirs = im2col.ConvTranspose2d(8, 4, 4, 2, 1), nn.ConvTranspose2d(8, 4, 4, 2, 1)
    assert isinstance(ours, nn.ConvTranspose2d)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert ours.weight.shape == theirs.weight.shape


def test_bf16_autocast_close_to_fp32() -> None:
    torch.manual_seed(0)
    conv = im2col.ConvTranspose2d(64, 32, 4, 2, 1)
    x = torch.randn(1, 64, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = conv(x)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), conv(x), atol=0.05, rtol=0.02)
