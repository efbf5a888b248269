"""SSIM against independent float64 implementations: scipy's Gaussian filter written out from Wang
et al. (2004), and scikit-image's ``structural_similarity`` when it is installed.  float32
accumulation missed both by up to 1e-4 per image (flat regions: the variance is a difference of
nearly equal means); the tolerance here is far below that."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from imgtrans.metrics import ssim


def _pairs(seed: int = 0, n: int = 3, side: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    """8-bit images with flat bright areas, a gradient and noise, and a slightly changed copy: the
    kind of image (maps, facades) where float32 variances lose most."""
    rng = np.random.default_rng(seed)
    base = np.full((n, 3, side, side), 230.0)
    base[:, :, side // 3:, :] = np.linspace(40, 220, side)[None, None, None, :]
    base += rng.normal(0, 4, base.shape)
    other = base + rng.normal(0, 6, base.shape)
    other[:, :, : side // 4] = 231.0  # a flat band: nearly equal means, tiny variance
    to_tensor = lambda a: torch.from_numpy(np.clip(np.round(a), 0, 255) / 127.5 - 1).float()  # noqa: E731
    return to_tensor(base), to_tensor(other)


def _ssim_scipy(x: np.ndarray, y: np.ndarray, sigma: float = 1.5) -> float:
    """Mean SSIM over channels and the window-valid region, every step in float64."""
    from scipy.ndimage import gaussian_filter

    pad = int(3.5 * sigma + 0.5)  # an 11-wide window for sigma 1.5, as skimage truncates
    values = []
    for a, b in zip(x, y):
        blur = lambda t: gaussian_filter(t, sigma, truncate=3.5)  # noqa: E731
        mu_a, mu_b = blur(a), blur(b)
        var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
        cov = blur(a * b) - mu_a * mu_b
        c1, c2 = 0.01**2, 0.03**2
        s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
        values.append(s[pad:-pad, pad:-pad].mean())
    return float(np.mean(values))


def _unit(images: torch.Tensor) -> np.ndarray:
    return ((images.double() + 1) / 2).numpy()


def test_ssim_matches_a_float64_reference_tightly() -> None:
    pytest.importorskip("scipy")
    a, b = _pairs()
    ours = ssim(a, b)
    assert ours.dtype == torch.float64
    for k in range(len(a)):
        assert abs(float(ours[k]) - _ssim_scipy(_unit(a)[k], _unit(b)[k])) < 1e-10


def test_ssim_matches_scikit_image() -> None:
    metrics = pytest.importorskip("skimage.metrics", reason="scikit-image is the reference when installed")
    a, b = _pairs(seed=1)
    ours = ssim(a, b)
    for k in range(len(a)):
        theirs = metrics.structural_similarity(_unit(a)[k], _unit(b)[k], channel_axis=0, data_range=1.0,
                                               gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
        assert abs(float(ours[k]) - theirs) < 1e-10
