"""Score images already on disk, without a model: a folder of generated images against a folder of
real ones (``imgtrans eval --generated DIR --real DIR``, :func:`imgtrans.score_folders`).

Images made elsewhere (another toolkit, an earlier ``imgtrans translate``, a paper's released
outputs) are scored by the same loop as eval (:mod:`imgtrans.metrics.scoring`), so their figures
compare with eval's.  **Paired** when the file names match one to one (by stem: ``x.png`` matches
``x.jpg``, since translate writes PNGs of JPEG inputs): each generated image is scored against the
real image of its name (L1, PSNR, SSIM by default) and set metrics compare the folders as sets.
**Unpaired** otherwise: set metrics only (FID and KID by default), and the result says why.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch

from ..core.interfaces import Metric
from ..data.images import load_image, to_tensor
from ..inference.engine import resolve_precision
from ..inference.plan import input_items, no_images_error
from ..util.errors import DataError
from .evaluate import EvalResult, check_batch_size, resolve_metrics, result_of, same_size_groups
from .scoring import Batch, score

Tick = Callable[[int], None]


def list_folder(folder: str | Path, role: str) -> list[Path]:
    """The images of ``folder`` (sorted, not recursive); a missing or image-less folder is one line."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise DataError(f"--{role} {path}: no such folder")
    items, ignored = input_items(path)
    if not items:
        raise no_images_error(path, False, ignored)
    return [p for p, _ in items]


def match_names(generated: list[Path], real: list[Path]) -> tuple[dict[str, tuple[Path, Path]], str]:
    """``{stem: (generated, real)}`` when the stems match one to one (else empty), and a sentence
    saying how the folders were matched (printed with the figures)."""
    stems_g, stems_r = [p.stem for p in generated], [p.stem for p in real]
    for stems, paths in ((stems_g, generated), (stems_r, real)):
        twins = sorted({s for s in stems if stems.count(s) > 1})
        if twins:
            shown = [p.name for p in paths if p.stem == twins[0]]
            return {}, (f"unpaired: {paths[0].parent} holds {', '.join(shown)} under one name, so names do not "
                        "match one to one; set metrics only")
    only_g, only_r = sorted(set(stems_g) - set(stems_r)), sorted(set(stems_r) - set(stems_g))
    if only_g or only_r:
        side, names = ("generated", only_g) if only_g else ("real", only_r)
        return {}, (f"unpaired: {len(only_g)} generated and {len(only_r)} real names have no match in the other "
                    f"folder (e.g. {side} {names[0]!r}); set metrics only")
    by_stem = dict(zip(stems_r, real))
    return ({p.stem: (p, by_stem[p.stem]) for p in generated},
            f"paired: {len(generated)} names match one to one (by name without extension)")


def _tensor(path: Path) -> torch.Tensor:
    return to_tensor(load_image(path, channels=3))  # grey and RGBA as RGB: every metric then agrees


def _paired_items(pairs: dict[str, tuple[Path, Path]], tick: Tick | None) -> Iterator[tuple[int, dict]]:
    for index, (made, truth) in enumerate(pairs.values()):
        a, b = _tensor(made), _tensor(truth)
        if a.shape != b.shape:
            raise DataError(f"{made} is {a.shape[-1]}x{a.shape[-2]} but {truth} is {b.shape[-1]}x{b.shape[-2]}: "
                            "paired metrics compare pixel by pixel; resize one folder, or score them as sets "
                            "(--unpaired, set metrics only)")
        if tick is not None:
            tick(1)
        yield index, {"A": a, "B": b, "path": str(made)}


def _images(paths: list[Path], tick: Tick | None) -> Iterator[tuple[int, dict]]:
    for index, path in enumerate(paths):
        image = _tensor(path)
        if tick is not None:
            tick(1)
        yield index, {"A": image, "path": str(path)}


def score_folders(generated: str | Path, real: str | Path, *, metrics: Sequence[str | Metric] | None = None,
                  paired: bool | None = None, batch_size: int | str = "auto", device: str | torch.device = "cpu",
                  precision: str | None = "fp32", fid_weights: str | Path | None = None,
                  on_progress: Tick | None = None, on_total: Tick | None = None) -> EvalResult:
    """Score the images of folder ``generated`` against those of folder ``real``; no model is run.

    ``paired``: ``None`` decides by the names (paired when they match one to one), ``True``
    requires that, ``False`` scores the folders as sets whatever the names.  ``metrics``: registered
    names or :class:`~imgtrans.core.interfaces.Metric` objects (default: L1, PSNR, SSIM when paired;
    FID and KID when not; paired metrics on unpaired folders are refused).  ``batch_size``
    (``auto``: as translate batches), ``device`` and ``precision`` run the set metrics' feature
    extractor; the figures do not depend on the batch.  ``on_total(n)`` / ``on_progress(k)``: how
    many images will be read, and each time ``k`` more are.  The result's ``pairing`` says how the
    folders were matched.
    """
    check_batch_size(batch_size)
    made, truth = list_folder(generated, "generated"), list_folder(real, "real")
    pairs, pairing = match_names(made, truth)
    if paired is True and not pairs:
        raise DataError(f"--paired needs one real image for each generated image, by name: {pairing.split(': ', 1)[1]}")
    if paired is False and pairs:
        pairs, pairing = {}, f"unpaired as asked: {len(made)} generated against {len(truth)} real images; set metrics only"
    chosen = resolve_metrics(metrics, bool(pairs), weights=fid_weights,
                             unpaired_because=f"{generated} and {real} are {pairing.split(';')[0]}")
    device = torch.device(device)
    if on_total is not None:
        on_total(len(pairs) if pairs else len(made) + len(truth))
    grouping = {"stride": 1, "device": device}

    def to_device(images: torch.Tensor) -> torch.Tensor:
        return images.to(device)

    if pairs:
        batches: Iterator[Batch] = (
            Batch(torch.stack([it["A"] for _, it in group]), torch.stack([it["B"] for _, it in group]),
                  [it["path"] for _, it in group], [i for i, _ in group])
            for group in same_size_groups(_paired_items(pairs, on_progress), batch_size, ("A", "B"), **grouping))
        references = None
    else:
        batches = (Batch(torch.stack([it["A"] for _, it in group]), None, [it["path"] for _, it in group],
                         [i for i, _ in group])
                   for group in same_size_groups(_images(made, on_progress), batch_size, ("A",), **grouping))
        references = (torch.stack([it["A"] for _, it in group])
                      for group in same_size_groups(_images(truth, on_progress), batch_size, ("A",), **grouping))
    extractor = resolve_precision(precision, device)
    scores = score(batches, {"generated": to_device}, chosen, references=references, precision=extractor,
                   device=device)["generated"]
    result = result_of(scores, chosen, direction="", paired=bool(pairs))
    result.pairing, result.precision = pairing, extractor
    return result
