"""``imgtrans eval``: a model scored on a dataset split by registered metrics, next to baselines; or
images already on disk (``--generated DIR --real DIR``) scored without a model."""
from __future__ import annotations

import json
import math
from pathlib import Path

import click

from ..core.directions import DIRECTIONS
from .params import ALSO_ACCEPTED, INFERENCE_PRECISION, MODEL, THREADS, BatchSize, apply_threads


@click.command("eval")
@click.option("--model", "-m", type=MODEL,
              help="A .safetensors checkpoint, a run directory (its model.safetensors), or zoo:NAME (with --data).")
@click.option("--data", help="Dataset name or folder: paired (targets are ground truth) or "
              "unpaired (scored by set metrics such as FID).")
@click.option("--generated", type=click.Path(file_okay=False), metavar="DIR",
              help="Instead of --model/--data: score the images in DIR, made by any tool, against --real; no "
                   "model is run.")
@click.option("--real", type=click.Path(file_okay=False), metavar="DIR",
              help="The real images --generated is scored against.")
@click.option("--paired/--unpaired", "pairing", default=None,
              help="With --generated/--real: require one real image per generated image by name (per-image "
                   "metrics), or score the folders as sets whatever the names [default: paired when the names "
                   "(without extension) match one to one, else set metrics only].")
@click.option("--split", default="test", show_default=True, help="Split to evaluate.")
@click.option("--format", "data_format", default="auto", show_default=True, metavar="NAME",
              help="Dataset format (see `imgtrans list dataset_format`); auto: the catalogue's layout, or detected.")
@click.option("--metric", "metrics", multiple=True, metavar="NAME",
              help="A metric to score (repeatable; see `imgtrans list metric`) [paired data: l1, psnr, ssim; "
                   "unpaired: fid, kid].")
@click.option("--fid-weights", type=click.Path(dir_okay=False), metavar="FILE",
              help="A local copy of the FID Inception weights (weights-inception-2015-12-05-6726825d.pth; its "
                   "sha256 is checked) instead of downloading them.")
@click.option("--compare", "compared", multiple=True, metavar="[NAME=]MODEL",
              help="Also score this model, and show its outputs beside the model's in --contact-sheet "
                   "(repeatable; named as serve names models: zoo:NAME -> NAME, a run's model -> the run).")
@click.option("--name", "model_name", default="model", show_default=True,
              help="The model's name in the table, the JSON and the contact sheet's header.")
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
@click.option("--batch-size", type=BatchSize(), default="auto", show_default=True,
              help="Images per forward pass, as for translate (consecutive same-size images; 'auto': as many as "
                   "translate would batch).  Every image is scored on its own: the figures do not depend on it.")
@click.option("--direction", type=click.Choice(DIRECTIONS),
              help="Which way to translate with a two-way (CycleGAN) model [paired data: its only direction, else "
                   "AtoB; unpaired data: both].")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@THREADS
@click.pass_context
def eval_command(ctx: click.Context, model: str | None, data: str | None, generated: str | None, real: str | None,
                 pairing: bool | None, split: str, data_format: str, metrics: tuple[str, ...],
                 fid_weights: str | None, baselines: tuple[str, ...], norm_stats: str | None, out_dir: str | None,
                 contact_sheet: str | None, report_dir: str | None, device: str, precision: str,
                 batch_size: int | str, direction: str | None, as_json: bool, overwrite: bool,
                 threads: int | None, compared: tuple[str, ...], model_name: str) -> None:
    """Score a model on a dataset split, or images you already have, with the protocol of every figure stated.

    Images are translated at native size and quantised to 8 bits before scoring.  A paired split is
    scored per image against its targets (L1 with pixels in [0, 1], PSNR in dB with peak 1, SSIM
    with an 11x11 Gaussian window); FID and KID (`--metric fid`, the `metrics` extra) compare the
    outputs' Inception features with the targets'.  An unpaired split is scored by FID and KID of
    G(A) against B, and of G_B(B) against A for a two-way model.  The networks run in fp32, batched
    as translate batches, unless --precision or --batch-size say otherwise.

    --generated DIR --real DIR scores two folders without a model: paired when the file names
    (without extension) match one to one, so per-image metrics and any set metrics; otherwise FID
    and KID only, and the output says so.  Progress goes to stderr: a bar in a terminal, a few whole
    lines in a log (none with --json).

    \b
    Examples:
      imgtrans eval --model zoo:basemap_a2b --data basemap --baseline identity
      imgtrans eval --model run/model.safetensors --data basemap --metric fid --metric ssim --fid-weights w.pth
      imgtrans eval --model run/model.safetensors --data basemap_unpaired --split test --json
      imgtrans eval --generated outputs/ --real data/test/B            # paired by name: L1, PSNR, SSIM
      imgtrans eval --generated outputs/ --real photos/ --metric fid --metric kid --fid-weights w.pth
    """
    from ..core.checkpoint import read_metadata
    from ..core.model_file import model_directions
    from ..inference.model import load_model, split_spec
    from ..metrics.eval_outputs import check_eval_outputs
    from ..metrics.evaluate import evaluate, untrained_like
    from ..util.devices import resolve_device
    from ..util.terminal import StderrBar, rich_console
    from ..zoo.store import resolve_model

    folders = _check_mode(ctx, model, data, generated, real, pairing)
    dev = resolve_device(device)
    apply_threads(threads, rich_console(stderr=True))
    lines = 0 if as_json else PROGRESS_LINES
    if folders:
        from ..metrics.folders import score_folders

        with StderrBar(True, "eval", lines=lines) as bar:
            result = score_folders(generated, real, metrics=list(metrics) or None, paired=pairing,
                                   batch_size=batch_size, device=dev, precision=precision, fid_weights=fid_weights,
                                   on_progress=bar.advance, on_total=lambda n: bar.reset(0, n))
        _print([result], f"{generated} vs {real}", result.precision, as_json, None, None)
        return
    compared_models = [split_spec(spec) for spec in compared]
    names = [model_name, *(name for name, _ in compared_models), *baselines]
    if len(set(names)) < len(names):
        raise click.UsageError(f"two of the scored models share a name ({', '.join(names)}): give --compare NAME=MODEL "
                               "or --name NAME")
    # before any work, not after the last image: the data folder and a model file are never outputs
    check_eval_outputs(out_dir, contact_sheet, report_dir, overwrite=overwrite,
                       protected=[Path(model).expanduser(), Path(data).expanduser(),
                                  *(Path(source).expanduser() for _, source in compared_models)])

    def run(way: str | None, first: bool) -> list:
        loaded = load_model(model, device=dev, direction=way)
        models = {model_name: loaded}
        for name, source in compared_models:
            models[name] = load_model(source, device=dev, direction=way)
        if "untrained" in baselines:
            models["untrained"] = untrained_like(loaded)
        if "identity" in baselines:
            models["identity"] = None
        with StderrBar(True, "eval" if first else f"eval {way}", lines=lines) as bar:
            return evaluate(models, data, split, metrics=list(metrics) or None, norm_stats=norm_stats,
                            out_dir=out_dir if first else None, contact_sheet=contact_sheet if first else None,
                            format=data_format, precision=precision, batch_size=batch_size, fid_weights=fid_weights,
                            report=report_dir if first else None, overwrite=overwrite, on_progress=bar.advance,
                            sheet_models=[model_name, *(name for name, _ in compared_models)],
                            on_total=lambda n: bar.reset(0, n))

    results = run(direction, True)
    if direction is None and _unpaired(results):  # a two-way model on unpaired data: the way back too
        others = [d for d in model_directions(read_metadata(resolve_model(model))) if d != results[0].direction]
        for way in others:
            results += run(way, False)
    ran = results[0].precision if results and results[0].name == model_name else "fp32"  # 'auto' decided per model
    _print(results, f"{data} / {split}", ran, as_json, contact_sheet, report_dir)


#: whole progress lines in a log (25 %, 50 %, 75 %, 100 %)
PROGRESS_LINES = 4
#: what only scoring a model means; refused with --generated/--real
_MODEL_ONLY = ("split", "data_format", "baselines", "compared", "model_name", "norm_stats", "out_dir", "contact_sheet", "report_dir",
               "overwrite", "direction")


def _check_mode(ctx: click.Context, model: str | None, data: str | None, generated: str | None, real: str | None,
                pairing: bool | None) -> bool:
    """True to score folders (--generated/--real), False to score a model (--model/--data); anything
    else is a one-line usage error naming what is missing or out of place."""
    if generated is None and real is None:
        if model is None or data is None:
            raise click.UsageError("eval needs --model and --data (score a model on a dataset), or --generated and "
                                   "--real (score images you already have, no model)")
        if pairing is not None:
            raise click.UsageError("--paired/--unpaired go with --generated/--real; a dataset split says itself "
                                   "whether it is paired")
        return False
    if generated is None or real is None:
        raise click.UsageError(f"{'--generated' if generated is None else '--real'} is missing: --generated DIR "
                               "is scored against --real DIR")
    given = [p for p in ctx.command.params if p.name in ("model", "data", *_MODEL_ONLY)
             and ctx.get_parameter_source(p.name) not in (None, click.core.ParameterSource.DEFAULT)]
    if given:
        shown = ", ".join(p.opts[-1] if p.opts[-1].startswith("--") else p.opts[0] for p in given)
        raise click.UsageError(f"{shown} only apply to scoring a model; --generated/--real score existing "
                               "images (no model, no dataset split)")
    return True


def _unpaired(results) -> bool:
    return bool(results) and all(not r.per_image for r in results)


def _print(results, title: str, precision: str, as_json: bool, contact_sheet: str | None,
           report_dir: str | None) -> None:
    from rich.markup import escape

    from ..util.terminal import rich_console
    from .tables import name_table, print_table

    if as_json:
        click.echo(json.dumps([{**r.as_dict(), "protocol": r.protocol} for r in results], indent=2))
        return
    two_way = len({r.direction for r in results}) > 1
    keys = [k for k in results[0].figures]
    headers = ["", "images", *(_heading(results[0], k) for k in keys)]
    rows = [(escape(r.name + (f" {r.direction}" if two_way else "")), str(r.count),
             *(_cell(k, r.figures.get(k)) for k in keys)) for r in results]
    title += "" if precision == "fp32" else f" ({precision})"
    print_table(name_table(tuple(headers), rows, names=("",), title=escape(title)))
    console = rich_console()
    if results[0].pairing:
        console.print(results[0].pairing, markup=False, highlight=False)
    for key, why in {k: w for r in results for k, w in r.notes.items()}.items():
        console.print(f"{key} {why}", markup=False, highlight=False)
    for line in dict.fromkeys(line for r in results for line in r.protocol):  # each once, in order
        console.print(escape(line), style="dim")
    for r in results:
        if r.precision_note:
            console.print(f"precision ({r.name}): {r.precision_note}", markup=False, highlight=False, soft_wrap=True)
    if results[0].reference_count:
        console.print("set metrics: small sets bias FID upward; compare only figures from equal set sizes and "
                      "protocols", style="dim")
    if contact_sheet:
        console.print(f"contact sheet: {contact_sheet}")
    if report_dir:
        console.print(f"report: {report_dir}/index.html")


def _heading(result, key: str) -> str:
    label = result.labels.get(key, key)
    better = result.better.get(key)
    return f"{label} ({better} is better)" if better == "lower" else label


def _cell(key: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and math.isnan(value):
        return "-"
    if key in ("psnr", "fid"):
        return f"{value:.2f}"
    return f"{value:.4f}" if key not in ("kid", "kid_std") else f"{value:.5f}"
