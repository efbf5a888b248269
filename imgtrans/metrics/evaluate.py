"""Evaluate a translation model on a dataset split with registered metrics (:mod:`imgtrans.metrics.scoring`).

A paired split (aligned pairs) is scored per image against the targets (L1, PSNR, SSIM by default)
and, when asked, by set metrics of outputs against targets.  An unpaired split is scored by set
metrics only (FID and KID by default): outputs of its A images against its B images.  Images are
translated at their native size (no resize or crop) and quantised to 8 bits first, so the figures
describe the PNGs a user would get.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..core.interfaces import Metric, PairedDataset, PairedMetric, SetMetric, UnpairedDataset
from ..data.catalog import resolve_dataset
from ..data.detect import select_format
from ..data.images import save_image, to_pixels
from ..inference.engine import resolve_precision
from ..inference.model import TranslationModel, build_generator
from ..inference.precision_probe import AutoPrecision
from ..inference.translate import auto_batch_size
from ..util.errors import ConfigError, DataError, ImgtransError
from .contact_sheet import ContactSheet
from .eval_outputs import check_eval_outputs, claim_eval_folder
from .scoring import Batch, Scores, score

#: what eval scores when no --metric is given
DEFAULT_PAIRED = ("l1", "psnr", "ssim", "grid")
DEFAULT_UNPAIRED = ("fid", "kid")


@dataclass
class EvalResult:
    """One model's figures on the split (``figures``: metric -> value), and per-image scores."""

    name: str
    count: int
    figures: dict[str, float]
    per_image: dict[str, list[float]] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)
    direction: str = "AtoB"
    reference_count: int = 0
    #: metric -> "higher" / "lower" (which way is better), and the table heading
    better: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    protocol: list[str] = field(default_factory=list)
    #: figure -> why it is missing (``kid_std`` from a single subset: the value is None)
    notes: dict[str, str] = field(default_factory=dict)
    #: scored per image against ground truth (False: set metrics only), and how that was decided
    paired: bool = True
    pairing: str = ""
    #: the dataset index of each per-image score
    indices: list[int] = field(default_factory=list)
    precision: str = "fp32"    # what the network ran in (the identity: fp32)
    precision_note: str = ""   # why, when ``auto`` weighed bf16/fp16 (imgtrans.inference.precision_probe)

    def __getattr__(self, key: str) -> float:  # result.l1, result.fid
        figures = self.__dict__.get("figures", {})
        if key in figures:
            return figures[key]
        raise AttributeError(key)

    def as_dict(self) -> dict[str, Any]:
        """The figures and what they describe (a folder's result has no direction, but its pairing)."""
        where = {"direction": self.direction} if self.direction else {"paired": self.paired, "pairing": self.pairing}
        counts = {"reference_count": self.reference_count} if self.reference_count and not self.direction else {}
        notes = {"notes": self.notes} if self.notes else {}
        return {"name": self.name, "count": self.count, **counts, **where, "precision": self.precision,
                **self.figures, **notes}


def untrained_like(model: TranslationModel, seed: int = 0) -> TranslationModel:
    """The same architecture, freshly initialised: the floor a trained model must clear."""
    torch.manual_seed(seed)
    gen = build_generator(model.info or model.metadata).to(model.device).eval()
    return TranslationModel(gen, dict(model.metadata), "untrained", model.direction, dict(model.info))


def load_split(data: str | Path, split: str, model: TranslationModel, direction: str | None = None,
               format: str = "auto", root: Path | None = None) -> tuple[Any, bool]:
    """The split, and whether its items are aligned pairs (B the ground truth of A).  A format
    whose items have no second domain (single images) is refused: there is nothing to compare with."""
    from ..core.plugin_host import get_host

    host = get_host()
    root = root if root is not None else resolve_dataset(str(data), host.catalog)
    fmt = select_format(root, host.registry, host.catalog, format)
    pairs = host.registry.create("dataset_format", fmt, root=root, split=split, transform=None,
                                 direction=direction or model.direction,
                                 in_channels=model.in_channels, out_channels=model.out_channels)
    if isinstance(pairs, UnpairedDataset):
        pairs.pair_by_index()
        return pairs, pairs.aligned()
    if not isinstance(pairs, PairedDataset):
        raise DataError(f"eval needs aligned ground truth, but {data} is {fmt!r} data with no target for each "
                        f"input; use paired data (aligned A|B images, or A/ and B/ folders with matching names)")
    return pairs, True


def resolve_metrics(metrics: Sequence[str | Metric] | None, paired: bool, *, data: str | Path = "", split: str = "",
                    weights: str | Path | None = None, unpaired_because: str | None = None) -> dict[str, Metric]:
    """Metric objects by name: registered names are built (``weights`` goes to those taking it), objects
    pass through.  Paired metrics on unpaired images are refused: they would score unrelated targets
    (``unpaired_because`` says why the images are unpaired; default: the split's B is not A's truth)."""
    from ..core.plugin_host import get_host

    registry = get_host().registry
    chosen: dict[str, Metric] = {}
    for item in metrics or (DEFAULT_PAIRED if paired else DEFAULT_UNPAIRED):
        if isinstance(item, str):
            component = registry.get("metric", item)
            args = {"weights": str(weights)} if weights is not None and "weights" in component.arguments() else {}
            chosen[item] = registry.create("metric", item, **args)
        else:
            chosen[getattr(item, "name", type(item).__name__.lower())] = item
    wrong = [n for n, m in chosen.items() if isinstance(m, PairedMetric)]
    if not paired and wrong:
        because = unpaired_because or (f"{data} split {split!r} is unpaired: its B images are not the ground truth "
                                       "of its A images")
        raise DataError(f"{because}, so {', '.join(wrong)} would score against unrelated targets; use set metrics "
                        "such as fid or kid (`imgtrans list metric`)")
    return chosen


def _save(pixels, path: Path, what: str, mark: str | None = None) -> None:
    try:
        save_image(pixels, path, mark=mark)
    except OSError as exc:
        raise ImgtransError(f"cannot write {what} {path}: {exc.strerror or exc}") from None


def same_size_groups(items: Iterable[tuple[int, dict]], batch_size: int | str, keys: tuple[str, ...], *,
                     stride: int = 1, device: str | torch.device = "cpu") -> Iterator[list[tuple[int, dict]]]:
    """Consecutive items in groups of one size, as translate batches them: at most ``batch_size``
    (``auto``: translate's own choice, :func:`imgtrans.inference.translate.auto_batch_size`) per
    group.  Every image is scored on its own, so the figures do not depend on the grouping."""
    batch: list[tuple[int, dict]] = []
    limit = 1
    for index, item in items:
        if batch and (any(item[k].shape != batch[0][1][k].shape for k in keys) or len(batch) >= limit):
            yield batch
            batch = []
        if not batch:
            h, w = item[keys[0]].shape[-2:]
            limit = auto_batch_size(h, w, stride, device) if batch_size == "auto" else int(batch_size)
        batch.append((index, item))
    if batch:
        yield batch


def check_batch_size(batch_size: int | str) -> None:
    if batch_size != "auto" and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ImgtransError(f"--batch-size must be 'auto' or at least 1, not {batch_size!r}")


def _ticking(items: Iterable[tuple[int, dict]], tick: Callable[[int], None] | None) -> Iterator[tuple[int, dict]]:
    for entry in items:
        if tick is not None:
            tick(1)
        yield entry


def _paired_batches(pairs: Any, batch_size: int | str, model: TranslationModel,
                    tick: Callable[[int], None] | None) -> Iterator[Batch]:
    items = _ticking(((i, pairs[i]) for i in range(len(pairs))), tick)
    for group in same_size_groups(items, batch_size, ("A", "B"), stride=model.stride, device=model.device):
        yield Batch(torch.stack([it["A"] for _, it in group]), torch.stack([it["B"] for _, it in group]),
                    [str(it.get("path") or it.get("path_A")) for _, it in group], [i for i, _ in group])


def _domain(pairs: Any, side: str, tick: Callable[[int], None] | None) -> Iterator[tuple[int, dict]]:
    """Each distinct image of one side of an unpaired set (index-paired items repeat the smaller side);
    ``tick`` counts every item read."""
    seen: set[str] = set()
    for i, item in _ticking(((i, pairs[i]) for i in range(len(pairs))), tick):
        path = str(item[f"path_{side}"])
        if path not in seen:
            seen.add(path)
            yield i, {"A": item[side], "path": path}


def _unpaired_batches(pairs: Any, batch_size: int | str, model: TranslationModel,
                      tick: Callable[[int], None] | None) -> Iterator[Batch]:
    for group in same_size_groups(_domain(pairs, "A", tick), batch_size, ("A",), stride=model.stride,
                                  device=model.device):
        yield Batch(torch.stack([it["A"] for _, it in group]), None, [it["path"] for _, it in group],
                    [i for i, _ in group])


def _references(pairs: Any, batch_size: int | str, model: TranslationModel,
                tick: Callable[[int], None] | None) -> Iterator[torch.Tensor]:
    for group in same_size_groups(_domain(pairs, "B", tick), batch_size, ("A",), stride=model.stride,
                                  device=model.device):
        yield torch.stack([it["A"] for _, it in group])


def translator(model: TranslationModel | None, out_channels: int, *, norm_stats: str | None,
               precision: str | AutoPrecision) -> Callable[[torch.Tensor], torch.Tensor]:
    """Images in [-1, 1] -> the model's outputs; ``None`` is the identity baseline (grey inputs
    repeated, colour inputs averaged, to the output's channels).  ``precision`` may be an
    :class:`AutoPrecision`, which decides ``auto`` on the first batch."""
    if model is None:
        def identity(a: torch.Tensor) -> torch.Tensor:
            return a if a.shape[1] == out_channels else a.mean(1, keepdim=True).expand(-1, out_channels, -1, -1)
        return identity

    auto = precision if isinstance(precision, AutoPrecision) else AutoPrecision(model, precision, norm_stats=norm_stats)

    def run(a: torch.Tensor) -> torch.Tensor:  # scores come from the plain contiguous fp32 forward
        return auto.run(lambda p: model.run(a, p, norm_stats=norm_stats,
                                            channels_last=False if p == "fp32" else None)).cpu()
    return run


def evaluate(models: dict[str, TranslationModel | None], data: str | Path, split: str = "test", *,
             metrics: Sequence[str | Metric] | None = None, norm_stats: str | None = None,
             out_dir: str | Path | None = None, contact_sheet: str | Path | None = None, sheet_rows: int = 8,
             sheet_models: Sequence[str] | None = None,
             on_progress: Callable[[int], None] | None = None, on_total: Callable[[int], None] | None = None,
             format: str = "auto", precision: str | None = "fp32", batch_size: int | str = "auto",
             fid_weights: str | Path | None = None, report: str | Path | None = None,
             overwrite: bool = False) -> list[EvalResult]:
    """Score each model (``None`` means the identity mapping) on ``data``/``split``.

    ``metrics``: registered names or :class:`~imgtrans.core.interfaces.Metric` objects (default: L1, PSNR,
    SSIM on a paired split; FID and KID on an unpaired one, outputs of A against the B images).
    ``fid_weights``: a local copy of the Inception weights.  Writes the first model's translations
    into ``out_dir``, a contact sheet (input | output | target rows; ``sheet_models`` names the
    models whose outputs it shows, default the first, with a header when there are several) and an HTML ``report`` folder
    when asked: never into the dataset or over a model, and over an earlier eval's output only
    with ``overwrite`` (:mod:`imgtrans.metrics.eval_outputs`).  ``format`` is the dataset format (``auto``: :mod:`imgtrans.data.detect`).
    ``precision`` (``auto`` as translate) and ``batch_size`` run the networks (and the feature
    extractor) as :func:`imgtrans.translate` runs a tensor: fp32 by default, so scores do not depend
    on the machine, batched as translate batches (``auto``), which gives the figures of one image at
    a time.  ``on_total(n)`` is told how many dataset items will be read, ``on_progress(k)`` each
    time ``k`` more are (a paired split reads each once, an unpaired one twice: A, then B).
    To score images already on disk, without a model: :func:`imgtrans.metrics.folders.score_folders`.
    """
    sources = [m.source for m in models.values() if m is not None and m.source]
    data_path = Path(str(data)).expanduser()
    check_eval_outputs(out_dir, contact_sheet, report, overwrite=overwrite, protected=[*sources, data_path])
    first = next((m for m in models.values() if m is not None), None)
    if first is None:
        raise ConfigError(f"evaluate needs at least one model, got {list(models) or 'none'} (None is the identity "
                          "baseline, scored beside a model); to score images you already have, use "
                          "imgtrans.score_folders(generated, real)")
    check_batch_size(batch_size)
    autos = {name: AutoPrecision(model, precision, norm_stats=norm_stats or model.recommended_norm_stats)
             for name, model in models.items() if model is not None}  # "auto": verified per model, first batch
    precision = resolve_precision(precision, first.device)  # the feature extractor's (FID, KID)
    from ..core.plugin_host import get_host

    root = resolve_dataset(str(data), get_host().catalog)
    check_eval_outputs(out_dir, contact_sheet, report, overwrite=overwrite, protected=[*sources, root])
    pairs, paired = load_split(data, split, first, format=format, root=root)
    chosen = resolve_metrics(metrics, paired, data=data, split=split, weights=fid_weights)
    translators = {name: translator(model, first.out_channels, norm_stats=norm_stats, precision=autos.get(name, "fp32"))
                   for name, model in models.items()}
    leader = next(iter(models))
    shown = list(sheet_models or [leader])
    unknown = [name for name in shown if models.get(name) is None]
    if unknown:
        raise ConfigError(f"sheet_models names {unknown}, which are not models being scored ({list(models)})")
    sheet = ContactSheet(shown, sheet_rows)
    if out_dir is not None:
        claim_eval_folder(out_dir, "eval-out")

    def on_outputs(batch: Batch, outputs: dict[str, torch.Tensor]) -> None:
        out = outputs[leader]
        for k in range(len(out)):
            if out_dir is not None:
                _save(to_pixels(out[k]), Path(out_dir) / f"{Path(batch.paths[k]).stem}.png", "--out")
        if contact_sheet is not None:
            sheet.add(batch.inputs, outputs, batch.targets)

    if on_total is not None:
        on_total(len(pairs) * (1 if paired else 2))
    if paired:
        results = score(_paired_batches(pairs, batch_size, first, on_progress), translators, chosen,
                        precision=precision, device=first.device, on_outputs=on_outputs)
    else:
        results = score(_unpaired_batches(pairs, batch_size, first, on_progress), translators, chosen,
                        precision=precision, device=first.device,
                        references=_references(pairs, batch_size, first, on_progress), on_outputs=on_outputs)
    if contact_sheet is not None and sheet:
        _save(sheet.pixels(), Path(contact_sheet), "--contact-sheet", mark="eval-contact-sheet")
    out = [result_of(scores, chosen, direction=first.direction, paired=paired) for scores in results.values()]
    for result in out:
        auto = autos.get(result.name)
        if auto is not None:
            result.precision = auto.precision
            result.precision_note = auto.decision.reason if auto.decision and auto.decision.worth_saying else ""
    if report is not None:
        from .eval_report import write_report

        write_report(report, out, chosen, pairs, translators[leader], paired=paired, title=f"{data} / {split}")
    return out


def result_of(scores: Scores, metrics: dict[str, Metric], *, direction: str = "AtoB", paired: bool = True) -> EvalResult:
    """The :class:`EvalResult` of one scored model (or folder of images)."""
    return EvalResult(scores.name, scores.count, scores.figures, scores.per_image, scores.paths, direction,
                      scores.reference_count, better={n: m.better for n, m in metrics.items()},
                      labels={n: m.label or n for n, m in metrics.items()}, protocol=protocols(metrics, scores),
                      notes=dict(scores.notes), paired=paired, indices=scores.indices)


def protocols(metrics: dict[str, Metric], scores: Scores | None = None) -> list[str]:
    """What each metric computes, one line each (shown with the results); a set metric's line ends
    with the image counts of both sides, without which a FID cannot be compared with another."""
    lines = []
    for name, metric in metrics.items():
        line = metric.protocol or f"{name}: {type(metric).__name__}"
        if scores is not None and isinstance(metric, SetMetric):
            line += f"; {scores.count} generated against {scores.reference_count} reference images"
        lines.append(line)
    return lines
