"""Watching a run: a loss-curve PNG, an HTML page per run directory, optional TensorBoard scalars.

The curve is drawn with PIL alone (matplotlib is not a dependency); the page is plain HTML with
relative links, so ``RUN/index.html`` opens from disk or from any static file server.
"""
from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from PIL import Image, ImageDraw, ImageFont

from ..util.fileio import atomic_path
from ..util.terminal import warn_stderr
from .checkpoints import MODEL_BEST, best_summary
from .rundir import COLUMNS_FILE

#: record keys that are bookkeeping, not losses
NOT_LOSSES = {"step", "epoch", "time", "img_per_s", "lr", "skipped_files"}
COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (23, 190, 207)]
SIZE = (900, 600)
VAL_ORDER = ("val_l1", "val_psnr", "val_ssim", "val_images")


def read_records(metrics_jsonl: Path) -> list[dict[str, Any]]:
    """The JSON objects of a metrics log; a missing file or a torn last line (a run being written) is skipped."""
    records = []
    try:
        lines = Path(metrics_jsonl).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            records.append(rec)
    return records


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def plotted_validation(records: list[dict[str, Any]]) -> str | None:
    """The validation metric the curves show: L1 when it was scored, else the first one scored
    (one panel, one scale: ``val_fid`` and ``val_ssim`` do not share an axis)."""
    first = None
    for rec in records:
        for key, v in rec.items():
            if key.startswith("val_") and _number(v) and key != "val_images" and not key.endswith("_std"):
                name = key[len("val_"):]
                if name == "l1":
                    return name
                if first is None and not name.startswith(("AtoB_", "BtoA_")):
                    first = name
    return first


def loss_groups(records: list[dict[str, Any]]) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """{panel title: {series: [(step, value), ...]}}: generator (G_*), discriminator (D_*), other losses,
    one validation metric (:func:`plotted_validation`, every direction); only panels with data."""
    metric = plotted_validation(records)
    val_title = f"validation {'L1' if metric == 'l1' else metric}"
    val_keys = {f"val_{metric}", f"val_BtoA_{metric}"}
    groups: dict[str, dict[str, list[tuple[float, float]]]] = {
        "generator losses": {}, "discriminator losses": {}, "other losses": {}, val_title: {}}
    for rec in records:
        if not _number(rec.get("step")):
            continue
        for key, v in rec.items():
            if key in NOT_LOSSES or key.startswith("lr_") or not isinstance(v, float) or not math.isfinite(v):
                continue
            if key.startswith("val_"):
                if key not in val_keys:
                    continue
                title = val_title
            else:
                title = {"G_": "generator losses", "D_": "discriminator losses"}.get(key[:2], "other losses")
            groups[title].setdefault(key, []).append((float(rec["step"]), float(v)))
    return {title: series for title, series in groups.items() if series}


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    return [lo + (hi - lo) * i / n for i in range(n + 1)]


def _label(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 1000 or v == int(v) else f"{v:.3g}"


def _panel(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], title: str,
           series: dict[str, list[tuple[float, float]]], colours: dict[str, tuple[int, int, int]]) -> None:
    x0, y0, x1, y1 = box
    font = _font(12)
    draw.text((x0, y0 - 18), title, fill="black", font=_font(14))
    draw.rectangle(box, outline=(120, 120, 120))
    points = [p for pts in series.values() for p in pts]
    sx = [p[0] for p in points]
    sy = [p[1] for p in points]
    xlo, xhi, ylo, yhi = min(sx), max(sx), min(sy), max(sy)
    if xhi == xlo:
        xlo, xhi = xlo - 1, xhi + 1
    if yhi == ylo:
        pad = abs(ylo) * 0.1 or 1.0
        ylo, yhi = ylo - pad, yhi + pad

    def at(x: float, y: float) -> tuple[float, float]:
        return x0 + (x - xlo) / (xhi - xlo) * (x1 - x0), y1 - (y - ylo) / (yhi - ylo) * (y1 - y0)

    for v in _ticks(ylo, yhi):
        _, y = at(xlo, v)
        draw.line([(x0, y), (x1, y)], fill=(230, 230, 230))
        draw.text((x0 - 6, y), _label(v), fill="black", font=font, anchor="rm")
    for v in _ticks(xlo, xhi):
        x, _ = at(v, ylo)
        draw.line([(x, y1), (x, y1 + 4)], fill=(120, 120, 120))
        draw.text((x, y1 + 6), _label(v), fill="black", font=font, anchor="ma")
    draw.text((x0 - 20, y1 + 6), "step", fill=(90, 90, 90), font=font, anchor="ra")
    for name, pts in series.items():
        xy = [at(x, y) for x, y in sorted(pts)]
        if len(xy) > 1:
            draw.line(xy, fill=colours[name], width=2)
        for x, y in xy if len(xy) <= 50 else []:
            draw.ellipse([x - 2.5, y - 2.5, x + 2.5, y + 2.5], fill=colours[name])
    lx, ly = x1 - 150, y0 + 6  # the legend, top right inside the axes
    draw.rectangle([lx - 6, ly - 4, x1 - 6, ly + 16 * len(series)], fill="white", outline=(200, 200, 200))
    for i, name in enumerate(series):
        y = ly + 16 * i + 6
        draw.line([(lx, y), (lx + 20, y)], fill=colours[name], width=3)
        draw.text((lx + 26, y), name, fill="black", font=font, anchor="lm")


def plot_losses(metrics_jsonl: Path, out_png: Path) -> Path:
    """Draw the loss curves of ``metrics_jsonl`` (one panel per group, x = step) into ``out_png`` atomically."""
    groups = loss_groups(read_records(Path(metrics_jsonl)))
    img = Image.new("RGB", SIZE, "white")
    draw = ImageDraw.Draw(img)
    if not groups:
        draw.text((SIZE[0] / 2, SIZE[1] / 2), "no losses logged yet", fill="black", font=_font(16), anchor="mm")
    names = [n for series in groups.values() for n in series]
    colours = {n: COLOURS[i % len(COLOURS)] for i, n in enumerate(names)}
    left, right, top, bottom, gap = 70, 20, 30, 25, 45
    height = (SIZE[1] - top - bottom - gap * (len(groups) - 1)) // max(len(groups), 1)
    for i, (title, series) in enumerate(groups.items()):
        y0 = top + i * (height + gap)
        _panel(draw, (left, y0, SIZE[0] - right, y0 + height), title, series, colours)
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        img.save(tmp, format="PNG")
    return out_png


# ----------------------------------------------------------------------------- the HTML page

CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1400px}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}
th{background:#f3f3f3}pre{background:#f7f7f7;padding:.8em;overflow:auto;max-height:30em}
figure{margin:0 0 1.5em}img{max-width:100%;image-rendering:pixelated}figcaption{color:#555}"""


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(v)


def _table(rows: list[dict[str, Any]], keys: list[str]) -> str:
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(k, '')))}</td>" for k in keys) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _previews(run_dir: Path) -> list[tuple[Path, str]]:
    """Preview grids newest first, captioned from their names (``epoch_0007.png`` -> "epoch 7",
    ``step_00001200.png`` -> "step 1200")."""
    found = []
    for p in (run_dir / "previews").glob("*.png"):
        if p.name.startswith("."):  # an atomic write in progress
            continue
        m = re.fullmatch(r"(epoch|step)_(\d+)", p.stem)
        found.append((p.stat().st_mtime_ns, p.name, p, f"{m.group(1)} {int(m.group(2))}" if m else p.name))
    return [(p, caption) for *_, p, caption in sorted(found, reverse=True)]



def write_html(run_dir: Path) -> Path:
    """Write ``RUN/index.html`` (and ``RUN/loss_curve.png``): config, latest metrics, validation, curves, previews."""
    run_dir = Path(run_dir)
    records = read_records(run_dir / "metrics.jsonl")
    plot_losses(run_dir / "metrics.jsonl", run_dir / "loss_curve.png")
    train = [r for r in records if "step" in r and not any(k.startswith("val_") for k in r)]
    val = [r for r in records if any(k.startswith("val_") for k in r)]
    e = html.escape
    name = e(run_dir.resolve().name)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{name}</title>"
             + f"<style>{CSS}</style></head><body><h1>{name}</h1>"]
    config = run_dir / "config.toml"
    if config.is_file():
        text = e(config.read_text(encoding="utf-8", errors="replace"))
        parts.append(f"<details><summary>Configuration (config.toml)</summary><pre>{text}</pre></details>")
    if train:
        last = train[-1]
        keys = [k for k in last if k != "time"]
        parts.append("<h2>Latest training metrics</h2>" + _table([last], keys))
    skipped = [r["skipped_files"] for r in records if "skipped_files" in r]
    if skipped:
        parts.append(f"<p>Skipped unreadable files: {e(str(skipped[-1]))}</p>")
    if val:
        keys = [k for k in ("epoch", "step") if any(k in r for r in val)]
        present = {k for r in val for k in r if k.startswith("val_")}
        keys += [k for k in VAL_ORDER if k in present] + sorted(present - set(VAL_ORDER))
        parts.append("<h2>Validation</h2>" + _best_line(run_dir) + _table(list(reversed(val)), keys))
    parts.append("<h2>Loss curves</h2><img src='loss_curve.png' alt='loss curves' width='900'>")
    previews = _previews(run_dir)
    if previews:
        columns_file = run_dir / "previews" / COLUMNS_FILE
        columns = columns_file.read_text(encoding="utf-8").strip() if columns_file.is_file() else "input | output | target"
        parts.append(f"<h2>Previews</h2><p>Columns: {e(columns)}. Newest first.</p>")
    for path, caption in previews:
        href = "previews/" + quote(path.name)
        parts.append(f"<figure><figcaption>{e(caption)}</figcaption>"
                     f"<a href='{e(href)}'><img src='{e(href)}' alt='{e(caption)}'></a></figure>")
    parts.append("</body></html>\n")
    out = run_dir / "index.html"
    with atomic_path(out) as tmp:
        tmp.write_text("\n".join(parts), encoding="utf-8")
    return out


def _best_line(run_dir: Path) -> str:
    """Which checkpoint is the best so far (``--keep-best``), read from the best checkpoint itself."""
    best = best_summary(run_dir)
    if best is None:
        return ""
    e = html.escape
    return (f"<p>Best by {e(str(best.get('metric')))} ({e(str(best.get('better')))} is better): "
            f"<b>{e(_fmt(best.get('score')))}</b> at step {e(str(best.get('step')))}, epoch {e(str(best.get('epoch')))}"
            f": <a href='{MODEL_BEST}'>{MODEL_BEST}</a> (and checkpoints/best.safetensors)</p>")


# ----------------------------------------------------------------------------- TensorBoard

class TensorBoardLogger:
    """Scalars of each metrics record (float values, by step) into ``RUN/tensorboard``."""

    def __init__(self, writer: Any):
        self.writer = writer

    @classmethod
    def create(cls, run_dir: Path, warn: Any = None) -> TensorBoardLogger | None:
        """A logger, or ``None`` after one warning line when TensorBoard is not installed."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            (warn or warn_stderr)("--tensorboard needs the tensorboard package (pip install tensorboard); "
                                  "continuing without it")
            return None
        return cls(SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard")))

    @staticmethod
    def tag(key: str) -> str:
        if key.startswith("val_"):
            return f"val/{key[4:]}"
        return f"loss/{key}" if key.startswith(("G_", "D_")) else f"train/{key}"

    def log(self, record: dict[str, Any]) -> None:
        step = record.get("step")
        if not isinstance(step, int):
            return
        for key, v in record.items():
            if key not in ("step", "epoch", "time") and isinstance(v, float) and math.isfinite(v):
                self.writer.add_scalar(self.tag(key), v, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
