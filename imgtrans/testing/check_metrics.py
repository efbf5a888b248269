"""Conformance checks of metrics: they build, declare their shape and direction, and score sensibly."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from ..core.interfaces import PairedMetric, SetMetric
from ..data.images import quantise
from ..util.errors import ConfigError
from .subject import check_defaults, component_subject

if TYPE_CHECKING:  # pragma: no cover
    from ..core.registry import Registry


def _images(seed: int, shape: tuple[int, ...] = (2, 3, 32, 32)) -> torch.Tensor:
    """Images in [-1, 1] on the 8-bit grid, as the scoring loop hands them over."""
    x = torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return quantise(x)


def check_metric(registry: "Registry", name: str) -> dict[str, Any]:
    """Check metric ``name``: it builds at its defaults, is a PairedMetric or a SetMetric, declares
    ``better`` as "higher" or "lower", and

    * paired: scores a batch of 2 as a ``(2,)`` tensor with no NaN, and a perfect output at least as
      well as a wrong one (by its own ``better``);
    * set: computes from random features a dict whose first key is a finite figure, and scores two
      samples of one distribution better than two far apart.  Its ``features`` are not run (they
      may need downloaded weights); a missing optional dependency (ConfigError) skips this part.

    Returns ``shape``, ``better`` and (set metrics) ``computed``."""
    subject, component = component_subject(registry, "metric", name)
    check_defaults(subject, component)
    with subject.rule("builds"):
        metric = registry.create("metric", name)
    if not isinstance(metric, (PairedMetric, SetMetric)):
        subject.fail("interface", f"it builds a {type(metric).__name__}, which subclasses neither "
                                  "imgtrans.core.interfaces.PairedMetric nor SetMetric")
    better = getattr(metric, "better", None)
    if better not in ("higher", "lower"):
        subject.fail("attributes", f"better must be 'higher' or 'lower', got {better!r}")
    sign = 1 if better == "higher" else -1
    if isinstance(metric, PairedMetric):
        target, wrong = _images(1), _images(2)
        with subject.rule("forward"):
            same, other = metric.score(target.clone(), target), metric.score(wrong, target)
        for values in (same, other):
            if not torch.is_tensor(values) or tuple(values.shape) != (2,) or torch.isnan(values).any():
                subject.fail("forward", f"scores 2 images as {values!r}: expected a (2,) tensor without NaN")
        if not all(sign * float(s) >= sign * float(o) for s, o in zip(same, other)):
            subject.fail("ordering", f"a perfect output scores {same.tolist()}, worse than a wrong one "
                                     f"{other.tolist()} although {better} is better")
        return {"shape": "paired", "better": better}
    g = torch.Generator().manual_seed(0)
    near, ref, far = (torch.randn(64, 8, generator=g) + shift for shift in (0.0, 0.0, 3.0))
    with subject.rule("compute"):
        try:
            close, apart = metric.compute(near, ref), metric.compute(far, ref)
        except ConfigError:  # caught inside the rule, which would report any exception as a broken rule
            return {"shape": "set", "better": better, "computed": False}
    for result in (close, apart):
        values = list(result.values()) if isinstance(result, dict) else []
        if not values or not isinstance(values[0], float) or not all(isinstance(v, float) or v is None
                                                                     for v in values[1:]):
            subject.fail("compute", f"returns {result!r}: expected a dict of floats (extras after the first "
                                    "may be None where undefined, e.g. kid_std from one subset)")
    first_close, first_apart = next(iter(close.values())), next(iter(apart.values()))
    if not (math.isfinite(first_close) and math.isfinite(first_apart)):
        subject.fail("compute", f"returns {close!r} / {apart!r}: expected finite figures")
    if not sign * first_close > sign * first_apart:
        subject.fail("ordering", f"one distribution against itself scores {first_close:.4g}, worse than two far "
                                 f"apart ({first_apart:.4g}) although {better} is better")
    return {"shape": "set", "better": better, "computed": True}
