"""Image-quality metrics on tensors in [-1, 1] (reported on the [0, 1] scale users reason in).

The functions here are the arithmetic of the core's per-image metrics; the registered components
(``imgtrans list metric``) are in :mod:`.paired` and :mod:`.distribution`, the one scoring loop
that eval, validation and :func:`imgtrans.evaluate` share in :mod:`.scoring`.
"""
from __future__ import annotations

import torch

from ..data.images import quantise  # noqa: F401 - the metrics' 8-bit rounding, public here


def _unit(x: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return (x.to(dtype).clamp(-1, 1) + 1) / 2


def l1(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per image, pixels in [0, 1]."""
    return (_unit(prediction) - _unit(target)).abs().flatten(1).mean(1)


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio per image in dB (peak 1.0); identical images give inf."""
    mse = (_unit(prediction) - _unit(target)).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse)


def ssim(prediction: torch.Tensor, target: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity per image (Wang et al. 2004: Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03),
    averaged over channels; images smaller than the window use a window of their size.

    Accumulated in float64: the variances are differences of nearly equal means (E[x^2] - E[x]^2),
    which float32 gets wrong by up to 1e-4 per image on flat regions; in float64 the figure is
    scikit-image's ``structural_similarity`` (Gaussian weights, population covariance) to 1e-12.

    The Gaussian is separable, so the blur is two 1-D passes of shifted, weighted sums: float64
    depthwise ``conv2d`` has no fast kernel on the CPU: the 11x11 one took 30x as long (4.8 s
    against 0.15 s for 8 images at 256x256 on a busy 2-core machine), most of an evaluation's time."""
    x, y = _unit(prediction, torch.float64), _unit(target, torch.float64)
    window = min(window, x.shape[-1], x.shape[-2])
    coords = torch.arange(window, dtype=torch.float64) - (window - 1) / 2
    g = torch.exp(-coords**2 / (2 * sigma**2))
    weights = (g / g.sum()).tolist()

    def blur_along(t: torch.Tensor, dim: int) -> torch.Tensor:
        n = t.shape[dim] - window + 1  # "valid": no padding, as the reference implementations
        out = t.narrow(dim, 0, n) * weights[0]
        for i in range(1, window):
            out.add_(t.narrow(dim, i, n), alpha=weights[i])
        return out

    def blur(t: torch.Tensor) -> torch.Tensor:
        return blur_along(blur_along(t, -2), -1)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.flatten(1).mean(1)


#: the per-image arithmetic by metric name (the core's own names: a plugin may not assume them away)
METRICS = {"l1": l1, "psnr": psnr, "ssim": ssim}
