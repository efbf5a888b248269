"""``imgtrans.translate``: files or tensors in, translated files or tensors out."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..data.images import list_images, load_image, save_image, to_pixels, to_tensor
from ..errors import DataError, ImgtransError
from .engine import run_generator
from .model import NORM_STATS, TranslationModel, load_model


@dataclass
class TranslateReport:
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def collect_inputs(source: str | Path) -> list[Path]:
    path = Path(source)
    if path.is_dir():
        return list_images(path)
    if path.is_file():
        return [path]
    raise DataError(f"input not found: {path}")


def output_path(src: Path, out: Path, single: bool) -> Path:
    if single and out.suffix.lower() in (".png",):
        return out
    return out / f"{src.stem}.png"


def translate(model: TranslationModel | str | Path, inputs: str | Path | Sequence[Path] | torch.Tensor,
              output: str | Path | None = None, *, batch_size: int = 1, norm_stats: str | None = None,
              overwrite: bool = False, device: str = "cpu",
              on_progress: Callable[[int], None] | None = None) -> TranslateReport | torch.Tensor:
    """Translate images with ``model`` (a :class:`TranslationModel` or checkpoint path).

    * a tensor ``(N, C, H, W)`` in [-1, 1] returns a tensor of the same size;
    * a file, a folder or a list of files writes one PNG per input into ``output`` (a folder, or
      a ``.png`` path for a single input) and returns a :class:`TranslateReport`.  Unreadable
      inputs are reported and skipped; existing outputs are kept unless ``overwrite``.
    """
    if not isinstance(model, TranslationModel):
        model = load_model(model, device=device)
    norm_stats = norm_stats or model.recommended_norm_stats
    if norm_stats not in NORM_STATS:
        raise ImgtransError(f"--norm-stats must be one of {', '.join(NORM_STATS)}, not {norm_stats!r}")
    if batch_size < 1:
        raise ImgtransError("--batch-size must be at least 1")

    if isinstance(inputs, torch.Tensor):
        return run_generator(model.generator, inputs.to(model.device), stride=model.stride, norm_stats=norm_stats)

    if output is None:
        raise ImgtransError("an output folder is needed when translating files")
    paths = collect_inputs(inputs) if isinstance(inputs, (str, Path)) else [Path(p) for p in inputs]
    single = isinstance(inputs, (str, Path)) and Path(inputs).is_file()
    out = Path(output)
    report = TranslateReport()
    by_size: dict[tuple[int, int], list[tuple[Path, torch.Tensor]]] = defaultdict(list)
    for src in paths:
        dst = output_path(src, out, single)
        if dst.exists() and not overwrite:
            report.failed.append((src, f"{dst} exists (pass --overwrite to replace it)"))
            continue
        try:
            pixels = load_image(src, model.in_channels)
        except DataError as exc:
            report.failed.append((src, str(exc)))
            continue
        by_size[pixels.shape[:2]].append((src, to_tensor(pixels)))
    for group in by_size.values():  # same-size images share a batch
        for i in range(0, len(group), batch_size):
            chunk = group[i:i + batch_size]
            batch = torch.stack([t for _, t in chunk]).to(model.device)
            result = run_generator(model.generator, batch, stride=model.stride, norm_stats=norm_stats)
            for (src, _), img in zip(chunk, result):
                dst = output_path(src, out, single)
                save_image(to_pixels(img), dst)
                report.written.append(dst)
            if on_progress:
                on_progress(len(chunk))
    return report

