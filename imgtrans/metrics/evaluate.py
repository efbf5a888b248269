"""Evaluate a translation model on a dataset split: L1, PSNR, SSIM against the targets.

Images are translated at their native size (no resize or crop) and quantised to 8 bits first,
so the figures describe the PNGs a user would get.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.catalog import resolve_dataset
from ..data.detect import select_format
from ..data.images import save_image, to_pixels
from ..destinations import check_writable_file, check_writable_folder
from ..errors import DataError, ImgtransError
from ..inference.engine import default_channels_last, resolve_precision, run_generator
from ..inference.model import TranslationModel, build_generator
from ..interfaces import PairedDataset, UnpairedDataset
from ..training.outputs import preview_grid
from . import METRICS, quantise


@dataclass
class EvalResult:
    name: str
    count: int
    l1: float
    psnr: float
    ssim: float

    def as_dict(self) -> dict[str, float | int | str]:
        return {"name": self.name, "count": self.count, "l1": self.l1, "psnr": self.psnr, "ssim": self.ssim}


def untrained_like(model: TranslationModel, seed: int = 0) -> TranslationModel:
    """The same architecture, freshly initialised: the floor a trained model must clear."""
    torch.manual_seed(seed)
    gen = build_generator(model.info or model.metadata).to(model.device).eval()
    return TranslationModel(gen, dict(model.metadata), "untrained", model.direction, dict(model.info))


def load_pairs(data: str | Path, split: str, model: TranslationModel, direction: str | None = None,
               format: str = "auto"):
    """The split as aligned (input, target) pairs.  Anything else is refused: scores against targets
    that are not the inputs' own counterparts (an unpaired set pairs each input with an unrelated B;
    a folder of single images has no targets) would be numbers without meaning."""
    from ..plugins import get_host

    host = get_host()
    root = resolve_dataset(str(data), host.catalog)
    fmt = select_format(root, host.registry, host.catalog, format)
    pairs = host.registry.create("dataset_format", fmt, root=root, split=split, transform=None,
                                 direction=direction or model.direction,
                                 in_channels=model.in_channels, out_channels=model.out_channels)
    if isinstance(pairs, UnpairedDataset):
        pairs.pair_by_index()
    if isinstance(pairs, UnpairedDataset) and not pairs.aligned():
        raise DataError(f"{data} split {split!r} is unpaired: its B images are not the ground truth of its A "
                        "images, so L1/PSNR/SSIM would score against unrelated targets")
    if not isinstance(pairs, (PairedDataset, UnpairedDataset)):
        raise DataError(f"eval needs aligned ground truth, but {data} is {fmt!r} data with no target for each "
                        f"input; use paired data (aligned A|B images, or A/ and B/ folders with matching names)")
    return pairs


def check_outputs(out_dir: str | Path | None, contact_sheet: str | Path | None) -> None:
    """Refuse an unwritable ``--out`` or ``--contact-sheet`` before anything is computed."""
    if out_dir is not None:
        check_writable_folder(out_dir, "--out")
    if contact_sheet is not None:
        check_writable_file(contact_sheet, "--contact-sheet")


def _save(pixels, path: Path, what: str) -> None:
    try:
        save_image(pixels, path)
    except OSError as exc:
        raise ImgtransError(f"cannot write {what} {path}: {exc.strerror or exc}") from None


def _batches(pairs, batch_size: int | str, model: TranslationModel) -> Iterator[list[dict]]:
    """Consecutive items of ``pairs`` in groups of the same size, as translate batches them: at most
    ``batch_size`` (``auto``: :func:`imgtrans.inference.translate.auto_batch_size`) per group."""
    from ..inference.translate import auto_batch_size

    batch: list[dict] = []
    limit = 1
    for i in range(len(pairs)):
        item = pairs[i]
        if batch and (item["A"].shape != batch[0]["A"].shape or item["B"].shape != batch[0]["B"].shape
                      or len(batch) >= limit):
            yield batch
            batch = []
        if not batch:
            h, w = item["A"].shape[-2:]
            limit = auto_batch_size(h, w, model.stride, model.device) if batch_size == "auto" else int(batch_size)
        batch.append(item)
    if batch:
        yield batch


def evaluate(models: dict[str, TranslationModel | None], data: str | Path, split: str = "test", *,
             norm_stats: str | None = None, out_dir: str | Path | None = None, contact_sheet: str | Path | None = None,
             sheet_rows: int = 8, on_progress: Callable[[int], None] | None = None,
             format: str = "auto", precision: str | None = "fp32", batch_size: int | str = 1) -> list[EvalResult]:
    """Score each model (``None`` means the identity mapping) on ``data``/``split``.

    Writes the first model's translations into ``out_dir`` and a contact sheet (input | output |
    target rows) when asked.  ``format`` is the dataset format (``auto``: :mod:`imgtrans.data.detect`).
    ``precision`` (any spelling of :mod:`imgtrans.precision_names`; ``auto`` as translate) and
    ``batch_size`` run the networks as :func:`imgtrans.translate` runs a tensor; the defaults, fp32
    one image at a time, are the plain forward the recorded scores come from.
    """
    check_outputs(out_dir, contact_sheet)
    first = next(m for m in models.values() if m is not None)
    if batch_size != "auto" and (not isinstance(batch_size, int) or batch_size < 1):
        raise ImgtransError(f"--batch-size must be 'auto' or at least 1, not {batch_size!r}")
    precision = resolve_precision(precision, first.device)
    channels_last = precision != "fp32" and default_channels_last(precision, first.device)
    pairs = load_pairs(data, split, first, format=format)
    totals = {name: {k: 0.0 for k in METRICS} for name in models}
    sheet: list[torch.Tensor] = []
    for batch in _batches(pairs, batch_size, first):
        a_all, b_all = torch.stack([item["A"] for item in batch]), torch.stack([item["B"] for item in batch])
        outs = {}
        for name, model in models.items():
            if model is None:
                out = a_all if a_all.shape[1] == b_all.shape[1] else a_all.mean(1, keepdim=True).expand_as(b_all)
            else:
                out = run_generator(model.generator, a_all.to(model.device), stride=model.stride,
                                    norm_stats=norm_stats or model.recommended_norm_stats,
                                    precision=precision, channels_last=channels_last).cpu()
            outs[name] = quantise(out)
        for k, item in enumerate(batch):
            a, b = a_all[k:k + 1], b_all[k:k + 1]
            for j, name in enumerate(models):
                out = outs[name][k:k + 1]
                for metric, fn in METRICS.items():
                    totals[name][metric] += float(fn(out, b)[0])
                if j == 0:
                    if out_dir is not None:
                        _save(to_pixels(out[0]), Path(out_dir) / f"{Path(item['path']).stem}.png", "--out")
                    if contact_sheet is not None and len(sheet) < sheet_rows:
                        sheet.append(preview_grid([a, out, b]))
            if on_progress:
                on_progress(1)
    if contact_sheet is not None and sheet:
        _save(to_pixels(torch.cat(sheet, dim=1)), Path(contact_sheet), "--contact-sheet")
    n = len(pairs)
    return [EvalResult(name, n, *(totals[name][k] / n for k in ("l1", "psnr", "ssim"))) for name in models]
