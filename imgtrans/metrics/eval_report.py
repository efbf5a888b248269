"""``imgtrans eval --report DIR``: one HTML page a person can read to see where a model fails.

The page holds the table of figures with their protocol, a histogram of each per-image score
(inline SVG: no plotting library, no external file) and the best and worst images by the first
per-image metric, as input | output | target rows written next to the page.
"""
from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..core.interfaces import Metric, PairedMetric
from ..data.images import image_grid, save_image, to_pixels
from ..util.errors import ImgtransError
from . import quantise
from .eval_outputs import claim_eval_folder

#: best and worst images shown per report
SHOWN = 3
BINS = 20


def histogram_svg(values: Sequence[float], title: str, width: int = 360, height: int = 140) -> str:
    """A bar histogram of the finite ``values`` as an SVG element (infinite ones are counted in the caption)."""
    finite = [v for v in values if math.isfinite(v)]
    caption = f"{html.escape(title)}: {len(finite)} images"
    if len(finite) < len(values):
        caption += f" ({len(values) - len(finite)} infinite, not drawn)"
    if not finite:
        return f"<p>{caption}</p>"
    low, high = min(finite), max(finite)
    span = (high - low) or 1.0
    counts = [0] * BINS
    for v in finite:
        counts[min(BINS - 1, int((v - low) / span * BINS))] += 1
    top, bar = max(counts), width / BINS
    rects = "".join(f'<rect x="{i * bar:.1f}" y="{height - 20 - c / top * (height - 30):.1f}" width="{bar - 1:.1f}" '
                    f'height="{c / top * (height - 30):.1f}" fill="#4a7ab5"><title>{c}</title></rect>'
                    for i, c in enumerate(counts) if c)
    axis = (f'<text x="0" y="{height - 5}" font-size="11">{low:.4g}</text>'
            f'<text x="{width}" y="{height - 5}" font-size="11" text-anchor="end">{high:.4g}</text>')
    return (f'<figure><svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">'
            f"{rects}{axis}</svg><figcaption>{caption}</figcaption></figure>")


def _table(results: Sequence[Any]) -> str:
    keys = list(results[0].figures)
    head = "".join(f"<th>{html.escape(results[0].labels.get(k, k))}</th>" for k in keys)
    rows = "".join(f"<tr><td>{html.escape(r.name)} {html.escape(r.direction)}</td><td>{r.count}</td>"
                   + "".join(f"<td>{_figure(r.figures[k])}</td>" for k in keys) + "</tr>" for r in results)
    notes = "".join(f"<p>{html.escape(k)} {html.escape(why)}</p>" for k, why in results[0].notes.items())
    return f"<table><tr><th></th><th>images</th>{head}</tr>{rows}</table>{notes}"


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def write_report(folder: str | Path, results: Sequence[Any], metrics: dict[str, Metric], pairs: Any,
                 translate: Callable[[torch.Tensor], torch.Tensor], *, paired: bool, title: str) -> Path:
    """Write ``folder/index.html`` (and its images); returns the page's path."""
    folder = Path(folder)
    try:
        claim_eval_folder(folder, "eval-report")
        parts = [f"<h1>{html.escape(title)}</h1>", _table(results), "<h2>Protocol</h2><ul>"
                 + "".join(f"<li>{html.escape(line)}</li>" for line in results[0].protocol) + "</ul>"]
        model = results[0]
        per_image = [n for n, m in metrics.items() if isinstance(m, PairedMetric)]
        if not paired or not per_image:
            parts.append("<p>No per-image scores: set metrics (FID, KID) describe the whole set.</p>")
        for name in per_image:
            title = f"{model.labels.get(name, name)} per image ({model.name})"
            parts.append(histogram_svg(model.per_image[name], title))
        if per_image:
            parts.append(_extremes(folder, model, per_image[0], metrics[per_image[0]].better, pairs, translate))
        page = folder / "index.html"
        page.write_text("<!doctype html><meta charset='utf-8'><title>" + html.escape(title) + "</title>"
                        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;text-align:right}"
                        "img{image-rendering:pixelated;max-width:100%}</style>" + "\n".join(parts), encoding="utf-8")
    except OSError as exc:
        raise ImgtransError(f"cannot write --report {folder}: {exc.strerror or exc}") from None
    return page


def _extremes(folder: Path, model: Any, name: str, better: str, pairs: Any,
              translate: Callable[[torch.Tensor], torch.Tensor]) -> str:
    """The best and worst images by metric ``name``: input | output | target rows, with their scores."""
    values = model.per_image[name]
    order = sorted(range(len(values)), key=lambda i: values[i], reverse=(better == "higher"))
    shown = {"best": order[:SHOWN], "worst": order[::-1][:SHOWN]}
    parts = []
    for kind, picks in shown.items():
        parts.append(f"<h2>{kind.capitalize()} {len(picks)} by {html.escape(name)} (input | output | target)</h2>")
        for rank, i in enumerate(picks, 1):
            item = pairs[model.indices[i]] if model.indices else None
            if item is None:
                continue
            with torch.inference_mode():
                out = quantise(translate(item["A"][None]))
            file = f"{kind}_{rank}.png"
            save_image(to_pixels(image_grid([item["A"][None], out, item["B"][None]])), folder / file)
            parts.append(f"<p>{html.escape(Path(model.paths[i]).name)}: {values[i]:.4g}<br>"
                         f"<img src='{file}' alt='{html.escape(model.paths[i])}'></p>")
    return "\n".join(parts)
