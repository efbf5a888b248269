"""The one scoring loop: ``imgtrans eval``, training validation and :func:`imgtrans.evaluate` all
score through :func:`score`, so a figure means the same wherever it is shown.

Per batch, each model's outputs are quantised to 8 bits (what a PNG would hold); paired metrics
score every output against its target, set metrics (FID, KID) keep features of the outputs and of
the reference images (the targets of a paired split, or the other domain of an unpaired one),
extracted once per batch for every metric sharing a ``feature_key``.  Set metrics are computed
once at the end.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import torch

from ..core.interfaces import Metric, PairedMetric, SetMetric
from ..util.errors import ConfigError, DataError
from . import quantise

Translator = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Batch:
    """Same-size inputs, their targets (None on an unpaired split) and where they came from."""

    inputs: torch.Tensor
    targets: torch.Tensor | None
    paths: list[str]
    indices: list[int] = field(default_factory=list)


@dataclass
class Scores:
    """One model's results: ``figures`` (metric -> value, plus extras such as ``kid_std``) and, for
    paired metrics, the per-image values in the order of ``paths`` / ``indices``."""

    name: str
    count: int = 0
    figures: dict[str, float] = field(default_factory=dict)
    per_image: dict[str, list[float]] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)
    reference_count: int = 0
    #: figure -> why it is None (a set metric's :meth:`~imgtrans.core.interfaces.SetMetric.notes`)
    notes: dict[str, str] = field(default_factory=dict)


def check_metrics(metrics: Mapping[str, Metric]) -> None:
    """Refuse objects that are neither shape of :class:`~imgtrans.core.interfaces.Metric`."""
    for name, metric in metrics.items():
        if not isinstance(metric, (PairedMetric, SetMetric)):
            raise ConfigError(f"metric {name!r} is a {type(metric).__name__}, not an imgtrans.core.interfaces."
                              "PairedMetric or SetMetric")


class _Features:
    """Feature rows by extraction key, for one side (a model's outputs, or the reference)."""

    def __init__(self, metrics: Mapping[str, SetMetric], precision: str):
        self.extractors: dict[str, SetMetric] = {}
        self.key_of: dict[str, str] = {}
        for name, metric in metrics.items():
            key = metric.feature_key or f"metric:{name}"
            self.key_of[name] = key
            self.extractors.setdefault(key, metric)
        self.precision = precision

    def extract(self, images: torch.Tensor, into: dict[str, list[torch.Tensor]]) -> None:
        from ..inference.engine import DTYPES

        for key, metric in self.extractors.items():
            context = (torch.autocast(images.device.type, dtype=DTYPES[self.precision])
                       if self.precision != "fp32" else contextlib.nullcontext())
            with context:
                rows = metric.features(images)
            into.setdefault(key, []).append(rows.detach().float().cpu())


def score(batches: Iterable[Batch], translators: Mapping[str, Translator], metrics: Mapping[str, Metric], *,
          references: Iterable[torch.Tensor] | None = None, precision: str = "fp32",
          device: str | torch.device | None = None,
          on_outputs: Callable[[Batch, dict[str, torch.Tensor]], None] | None = None) -> dict[str, Scores]:
    """Score every translator (model name -> images in [-1, 1] to outputs) on ``batches``.

    ``references`` (batches of images) are the set metrics' reference images on an unpaired split;
    by default the targets are.  Paired metrics need targets: on an unpaired split they are an
    error.  ``on_outputs(batch, {model: quantised outputs})`` sees every batch (saving images,
    contact sheets, progress).  ``precision`` is the autocast of feature extraction; reference
    images are moved to ``device`` (the models') before theirs.
    """
    check_metrics(metrics)
    paired = {n: m for n, m in metrics.items() if isinstance(m, PairedMetric)}
    sets = {n: m for n, m in metrics.items() if isinstance(m, SetMetric)}
    features = _Features(sets, precision)
    results = {name: Scores(name, per_image={n: [] for n in paired}) for name in translators}
    generated: dict[str, dict[str, list[torch.Tensor]]] = {name: {} for name in translators}
    reference: dict[str, list[torch.Tensor]] = {}
    with torch.inference_mode():
        for batch in batches:
            if batch.targets is None and paired:
                raise DataError(f"{', '.join(paired)} need ground truth, which this split does not have")
            outputs = {name: quantise(translate(batch.inputs)) for name, translate in translators.items()}
            for name, out in outputs.items():
                scores = results[name]
                scores.count += len(out)
                scores.paths += batch.paths
                scores.indices += batch.indices
                for metric_name, metric in paired.items():
                    target = batch.targets.to(out.device).float()
                    scores.per_image[metric_name] += [float(v) for v in metric.score(out, target)]
                if sets:
                    features.extract(out, generated[name])
            if sets and references is None and batch.targets is not None:
                features.extract(quantise(batch.targets.to(device or "cpu").float()), reference)
            if on_outputs is not None:
                on_outputs(batch, outputs)
        if sets and references is not None:
            for images in references:
                features.extract(quantise(images.to(device or "cpu").float()), reference)
    reference_rows = {key: torch.cat(rows) for key, rows in reference.items()}
    for name, scores in results.items():
        scores.figures = {n: (sum(v) / len(v) if v else math.nan) for n, v in scores.per_image.items()}
        for metric_name, metric in sets.items():
            key = features.key_of[metric_name]
            ours = torch.cat(generated[name][key]) if generated[name].get(key) else torch.empty(0, 0)
            theirs = reference_rows.get(key, torch.empty(0, 0))
            scores.reference_count = len(theirs)
            fewest = min(len(ours), len(theirs))
            if fewest < metric.min_images:
                raise DataError(f"{metric_name} needs at least {metric.min_images} images on each side, got "
                                f"{len(ours)} outputs and {len(theirs)} reference images")
            computed = metric.compute(ours, theirs)
            main = next(iter(computed), None)  # reported under the registered name, extras as they are
            scores.figures.update({metric_name if key == main else key: v for key, v in computed.items()})
            scores.notes.update({metric_name if key == main else key: why
                                 for key, why in metric.notes(len(ours), len(theirs)).items()})
    return results
