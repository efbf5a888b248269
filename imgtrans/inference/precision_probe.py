"""Verified ``auto`` precision: bf16/fp16 only where this model's outputs stay within 2 grey levels of fp32.

Whether a reduced precision is safe is a property of the weights, not of the architecture: on a
full-size U-Net-256 with reference-layout weights bf16 moves outputs by up to 10-15 grey levels,
on the shipped ``basemap_a2b`` by at most 2 (docs/translate.md has the figures).  So ``auto``
measures instead of assuming:

1. the *candidate* is what the hardware runs faster (:func:`candidate_precision`: bf16 on CPUs
   with native bf16, fp16 on CUDA); where there is none (fp32), nothing is probed;
2. a verdict remembered for this model file (:mod:`imgtrans.inference.verdicts`, keyed by the
   file's sha256, direction, device, candidate, normalisation mode and torch version) is used;
3. otherwise the first batch is run both ways and compared in grey levels (quantised to 8 bits as
   the written images are): the candidate is kept only if no pixel moves by more than
   :data:`MAX_GREY` levels and the mean move is at most :data:`MEAN_GREY`; the verdict is
   remembered, so later runs skip the probe;
4. while the candidate runs, every :data:`RECHECK_EVERY`-th batch is run in fp32 too (about 3%
   more work in bf16); a batch out of bounds switches the rest of the run, and the remembered
   verdict, to fp32.

An explicit precision is always obeyed, without a probe.  Every decision carries one line saying
what was chosen and why (:attr:`Decision.reason`).

:func:`choose_precision` is the one-call form for callers that run the network their own way
(serve, export): one sample batch in, ``(precision, reason)`` out.  :class:`AutoPrecision` is the
per-run form translate and eval use: it wraps each batch's forward pass.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..data.images import eight_bit_levels
from . import verdicts
from .engine import default_precision
from .model import TranslationModel

#: the most any pixel may move, in grey levels (of 255), for ``auto`` to keep a reduced precision ...
MAX_GREY = 2
#: ... and the most the mean move may be
MEAN_GREY = 0.5
#: with a reduced precision chosen, every this-many-th batch is also run in fp32 and compared
RECHECK_EVERY = 64


def candidate_precision(device: str | torch.device) -> str:
    """The reduced precision ``auto`` would consider on ``device`` (``"fp32"``: none).  Tests replace
    this to probe bf16 on machines without native bf16."""
    return default_precision(device)


def grey_levels(reference: torch.Tensor, other: torch.Tensor) -> tuple[int, float]:
    """(max, mean) absolute difference of two outputs in [-1, 1] after both are quantised to 8 bits
    exactly as written images are; a non-finite value counts as 255 levels off."""
    diff = (eight_bit_levels(reference.detach().cpu()) - eight_bit_levels(other.detach().cpu())).abs().nan_to_num(nan=255.0)
    if diff.numel() == 0:
        return 0, 0.0
    return int(diff.max()), float(diff.mean())


def within_bounds(max_diff: float, mean_diff: float) -> bool:
    return max_diff <= MAX_GREY and mean_diff <= MEAN_GREY


@dataclass
class Decision:
    precision: str                   # what the forward passes run in
    reason: str                      # one line: what was chosen and why
    candidate: str = "fp32"          # the reduced precision that was considered
    max_diff: int | None = None      # measured grey levels (probe, re-check or remembered)
    mean_diff: float | None = None
    source: str = "requested"        # requested | hardware | probe | cache | recheck

    @property
    def worth_saying(self) -> bool:
        """Whether ``auto`` weighed a reduced precision (so the user should hear the outcome)."""
        return self.source in ("probe", "cache", "recheck")


def _verdict_reason(candidate: str, precision: str, max_diff: int, mean_diff: float, how: str) -> str:
    if precision == candidate:
        return (f"{candidate} changes outputs by at most {max_diff} grey level(s) on this model (mean "
                f"{mean_diff:.2f}, {how}); running {candidate}; --precision fp32 gives exact fp32")
    return (f"{candidate} would change outputs by up to {max_diff} grey levels on this model (mean {mean_diff:.2f}, "
            f"{how}; the limit is {MAX_GREY}, mean {MEAN_GREY}); running fp32; --precision {candidate} forces it")


class AutoPrecision:
    """The precision of one run (translate, eval, serve), decided on its first batch when ``auto``.

    ``requested`` is any spelling of :mod:`imgtrans.util.precision_names` (``None`` = ``auto``).
    Call :meth:`run` with each batch's forward pass, ``forward(precision) -> output``.
    """

    def __init__(self, model: TranslationModel, requested: str | None, *, norm_stats: str | None = None,
                 device: str | torch.device | None = None):
        from ..util.precision_names import inference_precision

        requested = "auto" if requested is None else inference_precision(requested)
        self.device = torch.device(device) if device is not None else model.device
        self.norm_stats = norm_stats or model.recommended_norm_stats
        self.batches = 0
        self._key: str | None = None
        self.decision: Decision | None
        if requested != "auto":
            self.candidate = requested
            self.decision = Decision(requested, f"{requested}: as requested")
            return
        exported = model.generator.fixed_precision  # an exported graph (imgtrans export)
        self.candidate = exported or candidate_precision(self.device)
        if exported is not None:
            self.decision = Decision(exported, f"{exported}: the precision the model was exported in", source="hardware")
            return
        if self.candidate == "fp32":
            self.decision = Decision("fp32", f"fp32: no faster precision on this {self.device.type} "
                                             "(bf16 needs native CPU support; fp16 is for CUDA)", source="hardware")
            return
        self.decision = None
        store = verdicts.load()
        digest = verdicts.file_digest(model.source, store) if model.source else None
        if digest is None:
            return
        self._key = verdicts.verdict_key(digest, model.direction, self.device, self.candidate, self.norm_stats)
        known = verdicts.lookup(self._key, store)
        if known is not None:
            mx, mean = int(known.get("max", 0)), float(known.get("mean", 0.0))
            self.decision = Decision(known["precision"], _verdict_reason(
                self.candidate, known["precision"], mx, mean, f"remembered in the precision verdict cache ({verdicts.FILE_NAME})"),
                self.candidate, mx, mean, "cache")

    @property
    def pending(self) -> bool:
        """True until the first batch has decided an ``auto`` precision."""
        return self.decision is None

    @property
    def precision(self) -> str:
        """The decided precision (the candidate while still pending)."""
        return self.decision.precision if self.decision is not None else self.candidate

    def run(self, forward: Callable[[str], torch.Tensor]) -> torch.Tensor:
        """One batch's output in the chosen precision, probing or re-checking when due."""
        self.batches += 1
        decision = self.decision
        if decision is None:
            return self._probe(forward)
        if (decision.source in ("probe", "cache") and decision.precision != "fp32"
                and self.batches % RECHECK_EVERY == 0):
            return self._recheck(forward, decision)
        return forward(decision.precision)

    def _both(self, forward: Callable[[str], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, int, float]:
        reference = forward("fp32")
        reduced = forward(self.candidate)
        return (reference, reduced, *grey_levels(reference, reduced))

    def _probe(self, forward: Callable[[str], torch.Tensor]) -> torch.Tensor:
        reference, reduced, mx, mean = self._both(forward)
        chosen = self.candidate if within_bounds(mx, mean) else "fp32"
        self.decision = Decision(chosen, _verdict_reason(self.candidate, chosen, mx, mean, "measured on the first batch"),
                                 self.candidate, mx, mean, "probe")
        self._remember(chosen, mx, mean)
        return reduced if chosen == self.candidate else reference

    def _recheck(self, forward: Callable[[str], torch.Tensor], decision: Decision) -> torch.Tensor:
        reference, reduced, mx, mean = self._both(forward)
        if within_bounds(mx, mean):
            return reduced
        self.decision = Decision("fp32", f"{self.candidate} passed its first check but changed batch {self.batches} "
                                         f"by up to {mx} grey levels (mean {mean:.2f}); running fp32 from that batch on "
                                         f"(earlier ones ran in {self.candidate}); --precision {self.candidate} forces it",
                                 self.candidate, mx, mean, "recheck")
        self._remember("fp32", mx, mean)
        return reference

    def _remember(self, precision: str, max_diff: int, mean_diff: float) -> None:
        if self._key is not None:
            verdicts.record(self._key, {"precision": precision, "candidate": self.candidate, "max": max_diff,
                                        "mean": round(mean_diff, 4)})


def choose_precision(model: TranslationModel, sample_batch: torch.Tensor, requested: str | None = "auto",
                     device: str | torch.device | None = None, *, norm_stats: str | None = None) -> tuple[str, str]:
    """``(precision, reason)`` for running ``model``: ``requested`` itself unless it is ``auto``;
    for ``auto``, the remembered verdict or a probe of ``sample_batch`` (N, C, H, W in [-1, 1]).

    For callers that run the network their own way (serve, export) and cannot hand each batch to
    :class:`AutoPrecision`; the verdict is remembered the same way."""
    auto = AutoPrecision(model, requested, norm_stats=norm_stats, device=device)
    if auto.pending:
        auto.run(lambda p: model.run(sample_batch, p, norm_stats=auto.norm_stats))
    assert auto.decision is not None
    return auto.decision.precision, auto.decision.reason
