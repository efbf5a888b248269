"""``imgtrans eval``: a model scored on a dataset split by registered metrics, next to baselines."""
from __future__ import annotations

import json
import math
from pathlib import Path

import click

from ..core.directions import DIRECTIONS
from .params import ALSO_ACCEPTED, INFERENCE_PRECISION, MODEL, BatchSize


@click.command("eval")
@click.option("--model", "-m", required=True, type=MODEL,
              help="A .safetensors checkpoint, a run directory (its model.safetensors), or zoo:NAME.")
@click.option("--data", required=True, help="Dataset name or folder: paired (targets are ground truth) or "
              "unpaired (scored by set metrics such as FID).")
@click.option("--split", default="test", show_default=True, help="Split to evaluate.")
@click.option("--format", "data_format", default="auto", show_default=True, metavar="NAME",
              help="Dataset format (see `imgtrans list dataset_format`); auto: the catalogue's layout, or detected.")
@click.option("--metric", "metrics", multiple=True, metavar="NAME",
              help="A metric to score (repeatable; see `imgtrans list metric`) [paired data: l1, psnr, ssim; "
                   "unpaired: fid, kid].")
@click.option("--fid-weights", type=click.Path(dir_okay=False), metavar="FILE",
              help="A local copy of the FID Inception weights (weights-inception-2015-12-05-6726825d.pth; its "
                   "sha256 is checked) instead of downloading them.")
@click.option("--baseline", "baselines", multiple=True, type=click.Choice(["untrained", "identity"]),
              help="Also score a freshly initialised network of the same architecture, or the input itself.")
@click.option("--norm-stats", type=click.Choice(["running", "instance"]), help="Batch-norm statistics mode.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Write the model's translations into this new (or empty) folder; never into the data.")
@click.option("--contact-sheet", type=click.Path(dir_okay=False), help="Write a PNG of input | output | target rows.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Write an HTML report here: the table, histograms of per-image scores, best and worst images.")
@click.option("--overwrite", is_flag=True,
              help="Replace the --out, --report or --contact-sheet of an earlier eval (never anything eval did "
                   "not write, the data or a model).")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when available, else CPU), cpu, "
              "cuda or cuda:N.")
@click.option("--precision", type=INFERENCE_PRECISION, default="fp32", show_default=True,
              help="Arithmetic of the forward passes and feature extraction, as for translate ('auto': what "
                   f"translate would use here, verified per model on the first batch).  fp32 by default, so that scores do not depend on the machine. "
                   f"{ALSO_ACCEPTED}")
@click.option("--batch-size", type=BatchSize(), default=1, show_default=True,
              help="Images per forward pass, as for translate (consecutive same-size images; 'auto': translate's "
                   "default).")
@click.option("--direction", type=click.Choice(DIRECTIONS),
              help="Which way to translate with a two-way (CycleGAN) model [paired data: its only direction, else "
                   "AtoB; unpaired data: both].")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def eval_command(model: str, data: str, split: str, data_format: str, metrics: tuple[str, ...],
                 fid_weights: str | None, baselines: tuple[str, ...], norm_stats: str | None, out_dir: str | None,
                 contact_sheet: str | None, report_dir: str | None, device: str, precision: str,
                 batch_size: int | str, direction: str | None, as_json: bool, overwrite: bool) -> None:
    """Score a model on a dataset split, with the protocol of every figure stated.

    Images are translated at native size and quantised to 8 bits before scoring.  A paired split is
    scored per image against its targets (L1 with pixels in [0, 1], PSNR in dB with peak 1, SSIM
    with an 11x11 Gaussian window); FID and KID (`--metric fid`, the `metrics` extra) compare the
    outputs' Inception features with the targets'.  An unpaired split is scored by FID and KID of
    G(A) against B, and of G_B(B) against A for a two-way model.  The networks run in fp32, one
    image at a time, unless --precision or --batch-size say otherwise.

    \b
    Examples:
      imgtrans eval --model zoo:basemap_a2b --data basemap --baseline identity
      imgtrans eval --model run/model.safetensors --data basemap --metric fid --metric ssim --fid-weights w.pth
      imgtrans eval --model run/model.safetensors --data basemap_unpaired --split test --json
    """
    from ..core.checkpoint import read_metadata
    from ..core.model_file import model_directions
    from ..inference.model import load_model
    from ..metrics.eval_outputs import check_eval_outputs
    from ..metrics.evaluate import evaluate, untrained_like
    from ..util.devices import resolve_device
    from ..zoo.store import resolve_model

    dev = resolve_device(device)
    # before any work, not after the last image: the data folder and a model file are never outputs
    check_eval_outputs(out_dir, contact_sheet, report_dir, overwrite=overwrite,
                       protected=[Path(model).expanduser(), Path(data).expanduser()])

    def run(way: str | None, first: bool) -> list:
        loaded = load_model(model, device=dev, direction=way)
        models = {"model": loaded}
        if "untrained" in baselines:
            models["untrained"] = untrained_like(loaded)
        if "identity" in baselines:
            models["identity"] = None
        return evaluate(models, data, split, metrics=list(metrics) or None, norm_stats=norm_stats,
                        out_dir=out_dir if first else None, contact_sheet=contact_sheet if first else None,
                        format=data_format, precision=precision, batch_size=batch_size, fid_weights=fid_weights,
                        report=report_dir if first else None, overwrite=overwrite)

    results = run(direction, True)
    if direction is None and _unpaired(results):  # a two-way model on unpaired data: the way back too
        others = [d for d in model_directions(read_metadata(resolve_model(model))) if d != results[0].direction]
        for way in others:
            results += run(way, False)
    ran = results[0].precision if results and results[0].name == "model" else "fp32"  # 'auto' decided per model
    _print(results, data, split, ran, as_json, contact_sheet, report_dir)


def _unpaired(results) -> bool:
    return bool(results) and all(not r.per_image for r in results)


def _print(results, data: str, split: str, precision: str, as_json: bool, contact_sheet: str | None,
           report_dir: str | None) -> None:
    from ..util.terminal import rich_console
    from rich.markup import escape

    from .tables import name_table, print_table

    if as_json:
        click.echo(json.dumps([{**r.as_dict(), "protocol": r.protocol} for r in results], indent=2))
        return
    two_way = len({r.direction for r in results}) > 1
    keys = [k for k in results[0].figures]
    headers = ["", "images", *(_heading(results[0], k) for k in keys)]
    rows = [(escape(r.name + (f" {r.direction}" if two_way else "")), str(r.count),
             *(_cell(k, r.figures.get(k)) for k in keys)) for r in results]
    title = f"{data} / {split}" + ("" if precision == "fp32" else f" ({precision})")
    print_table(name_table(tuple(headers), rows, names=("",), title=escape(title)))
    console = rich_console()
    for line in results[0].protocol:
        console.print(escape(line), style="dim")
    for r in results:
        if r.precision_note:
            console.print(f"precision ({r.name}): {r.precision_note}", markup=False, highlight=False, soft_wrap=True)
    if results[0].reference_count:
        console.print(f"set metrics: {results[0].count} outputs against {results[0].reference_count} reference images "
                      "(small sets bias FID upward; compare only figures from equal set sizes and protocols)",
                      style="dim")
    if contact_sheet:
        console.print(f"contact sheet: {contact_sheet}")
    if report_dir:
        console.print(f"report: {report_dir}/index.html")


def _heading(result, key: str) -> str:
    label = result.labels.get(key, key)
    better = result.better.get(key)
    return f"{label} ({better} is better)" if better == "lower" else label


def _cell(key: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if key in ("psnr", "fid"):
        return f"{value:.2f}"
    return f"{value:.4f}" if key not in ("kid", "kid_std") else f"{value:.5f}"
