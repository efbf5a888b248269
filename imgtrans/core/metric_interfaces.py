"""What a metric is: per image (:class:`PairedMetric`) or over a set (:class:`SetMetric`); the
one scoring loop (:mod:`imgtrans.metrics.scoring`) runs both.  Re-exported by
:mod:`imgtrans.core.interfaces` and :mod:`imgtrans.api`."""
from __future__ import annotations

import abc
from typing import ClassVar

import torch


class Metric:
    """A figure of merit for translated images, registered like any component (``registry.metric``).

    Two shapes, chosen by subclassing :class:`PairedMetric` or :class:`SetMetric`; the one scoring
    loop (:mod:`imgtrans.metrics.scoring`) serves ``imgtrans eval``, training validation and
    :func:`imgtrans.evaluate` alike.  Images reach a metric in [-1, 1], already quantised to the
    256 levels an 8-bit PNG holds, so a score describes the files a user gets.
    """

    #: ``"higher"`` or ``"lower"``: which way is better (best checkpoints, best/worst images)
    better: ClassVar[str] = "higher"
    #: the column heading in tables, units included (``"PSNR dB"``); default: the name
    label: ClassVar[str] = ""
    #: printed with the results: what exactly is computed, so figures can be compared with others'
    protocol: ClassVar[str] = ""


class PairedMetric(Metric, abc.ABC):
    """Scores each output against its own ground truth; the set's figure is the mean over images."""

    @abc.abstractmethod
    def score(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` outputs and targets -> ``(N,)`` per-image scores."""


class SetMetric(Metric, abc.ABC):
    """Compares the distribution of the outputs with that of reference images (FID, KID): needs no
    pairing, so it scores unpaired test sets too.

    The loop calls :meth:`features` on every batch of outputs and of reference images, keeps the
    rows, and calls :meth:`compute` once at the end.  Metrics whose ``feature_key`` is equal share
    one extraction per image (FID and KID on the same Inception features).
    """

    #: metrics with the same non-empty key get the same features, computed once
    feature_key: str = ""
    #: fewest images per side for a meaningful figure; fewer is an error naming the count
    min_images: ClassVar[int] = 2

    def prepare(self) -> None:
        """Fetch and load what the metric needs (weights) now: training calls it at start-up, so a
        missing or wrong file stops a run before it trains rather than at its first validation."""

    @abc.abstractmethod
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` images in [-1, 1] -> ``(N, D)`` float features."""

    @abc.abstractmethod
    def compute(self, generated: torch.Tensor, reference: torch.Tensor) -> dict[str, float | None]:
        """The figure from all features of both sides: ``{name: value}`` with the metric's own figure
        first (reported under the name the metric is registered as, whatever its key here);
        further keys (``kid_std``) are reported alongside.  ``None``: not defined for these sets,
        with the reason given by :meth:`notes`."""

    def notes(self, generated: int, reference: int) -> dict[str, str]:
        """``{figure: why it is None}`` for sets of these sizes (KID's spread from a single subset);
        shown in place of the figure, so a meaningless number is never printed."""
        return {}
