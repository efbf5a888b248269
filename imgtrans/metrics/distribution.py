"""FID and KID: distances between the feature distributions of outputs and reference images.

The arithmetic is torch-fidelity's (``fid_features_to_statistics`` / ``fid_statistics_to_metric``,
``kid_features_to_metric``), not ours; the features are its Inception-v3 port of the TF FID network
(:mod:`imgtrans.metrics.inception`).  One extraction per image serves both metrics.  A test (or a
user with another backbone) may pass ``extractor``: any module mapping ``(N, C, H, W)`` images in
[-1, 1] to ``(N, D)`` features, used instead of Inception.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..core.interfaces import SetMetric
from ..data.images import eight_bit_levels
from ..util.errors import ConfigError
from .inception import EXTRA_HINT, INCEPTION, inception_extractor, inception_weights

PROTOCOL = ("Inception-v3 pool features (2048-d) of torch-fidelity's port of the TF FID network "
            f"({INCEPTION.name}); outputs quantised to 8 bits, grey images repeated to RGB, resized to "
            "299x299 by torch-fidelity's TF-1.x-style bilinear interpolation (no antialiasing; "
            "pytorch-fid's and clean-fid's resizes give other figures)")


def _fidelity(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(f"torch_fidelity.{module}")
    except ImportError:
        raise ConfigError(f"FID and KID need torch-fidelity; {EXTRA_HINT}") from None


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> the 0..255 bytes of the PNG the image would be, as Inception expects."""
    return eight_bit_levels(images).to(torch.uint8)


class _InceptionMetric(SetMetric):
    def __init__(self, weights: str | None = None, extractor: nn.Module | None = None):
        self.weights, self.extractor = weights, extractor
        self.feature_key = f"custom:{id(extractor)}" if extractor is not None else f"inception:{weights or ''}"
        self._net: nn.Module | None = extractor

    def _network(self) -> nn.Module:
        if self._net is None:
            _fidelity("feature_extractor_inceptionv3")  # the extra's absence, before any download
            self._net = inception_extractor(inception_weights(self.weights))
        return self._net

    def prepare(self) -> None:
        self._network()

    def features(self, images: torch.Tensor) -> torch.Tensor:
        net = self._network()
        device = images.device
        if next(net.parameters(), torch.empty(0)).device != device:
            net.to(device)
        with torch.inference_mode():
            if self.extractor is not None:
                return net(images).float().flatten(1)
            if images.shape[1] == 1:
                images = images.expand(-1, 3, -1, -1)
            elif images.shape[1] != 3:
                raise ConfigError(f"{type(self).__name__} needs RGB or grey images, not {images.shape[1]} channels")
            return net(to_uint8(images))[0].float()


class FID(_InceptionMetric):
    """Frechet Inception Distance between outputs and reference images (lower is better).

    Args:
        weights: a local copy of the Inception weights (verified); default: downloaded and cached.
        extractor: a module used instead of Inception (tests, other backbones).
    """

    better = "lower"
    label = "FID"
    min_images = 2
    protocol = f"FID: {PROTOCOL}; Frechet distance of Gaussians fitted to both sets"

    def compute(self, generated: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
        fid = _fidelity("metric_fid")
        stats = [fid.fid_features_to_statistics(f.double().cpu()) for f in (generated, reference)]
        return {"fid": float(fid.fid_statistics_to_metric(*stats, verbose=False)[fid.KEY_METRIC_FID])}


class KID(_InceptionMetric):
    """Kernel Inception Distance: unbiased MMD^2, cubic polynomial kernel (lower is better).

    Args:
        subsets: random subsets averaged (torch-fidelity's default 100).
        subset_size: images per subset (default 1000), capped at the smaller set's size.
        weights: a local copy of the Inception weights (verified); default: downloaded and cached.
        extractor: a module used instead of Inception (tests, other backbones).
    """

    better = "lower"
    label = "KID"
    min_images = 2

    def __init__(self, subsets: int = 100, subset_size: int = 1000, weights: str | None = None,
                 extractor: nn.Module | None = None):
        super().__init__(weights, extractor)
        self.subsets, self.subset_size = subsets, subset_size
        self.protocol = (f"KID: {PROTOCOL}; unbiased MMD^2 with kernel (x.y/d + 1)^3, mean (and std) over "
                         f"{subsets} subsets of min({subset_size}, set sizes) images, seed 2020; not x 1000")

    def _one_subset(self, generated: int, reference: int) -> bool:
        """Both sets no larger than a subset, and equal: every subset is both whole sets, so the
        spread over subsets is 0 by construction, not a measurement."""
        return generated == reference <= self.subset_size

    def compute(self, generated: torch.Tensor, reference: torch.Tensor) -> dict[str, float | None]:
        kid = _fidelity("metric_kid")
        size = min(self.subset_size, len(generated), len(reference))
        out = kid.kid_features_to_metric(generated.double().cpu(), reference.double().cpu(), kid_subsets=self.subsets,
                                         kid_subset_size=size, verbose=False)
        std = None if self._one_subset(len(generated), len(reference)) else float(out[kid.KEY_METRIC_KID_STD])
        return {"kid": float(out[kid.KEY_METRIC_KID_MEAN]), "kid_std": std}

    def notes(self, generated: int, reference: int) -> dict[str, str]:
        if not self._one_subset(generated, reference):
            return {}
        return {"kid_std": f"n/a (one subset: {generated} images <= subset size {self.subset_size})"}
