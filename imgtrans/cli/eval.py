"""``imgtrans eval``: L1, PSNR and SSIM of a model on a dataset split, next to baselines."""
from __future__ import annotations

import json

import click

from .params import ALSO_ACCEPTED, INFERENCE_PRECISION, BatchSize


@click.command("eval")
@click.option("--model", "-m", required=True, help="A .safetensors checkpoint, or zoo:NAME.")
@click.option("--data", required=True, help="Dataset name or folder whose targets are ground truth for its inputs (paired data).")
@click.option("--split", default="test", show_default=True, help="Split to evaluate.")
@click.option("--format", "data_format", default="auto", show_default=True, metavar="NAME",
              help="Dataset format (see `imgtrans list dataset_format`); auto: the catalogue's layout, or detected.")
@click.option("--baseline", "baselines", multiple=True, type=click.Choice(["untrained", "identity"]),
              help="Also score a freshly initialised network of the same architecture, or the input itself.")
@click.option("--norm-stats", type=click.Choice(["running", "instance"]), help="Batch-norm statistics mode.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Write the model's translations here.")
@click.option("--contact-sheet", type=click.Path(dir_okay=False), help="Write a PNG of input | output | target rows.")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when available, else CPU), cpu, "
              "cuda or cuda:N.")
@click.option("--precision", type=INFERENCE_PRECISION, default="fp32", show_default=True,
              help="Arithmetic of the forward passes, as for translate ('auto': what translate would use "
                   f"here).  fp32 by default, so that scores do not depend on the machine. {ALSO_ACCEPTED}")
@click.option("--batch-size", type=BatchSize(), default=1, show_default=True,
              help="Images per forward pass, as for translate (consecutive same-size images; 'auto': translate's "
                   "default).")
@click.option("--direction", type=click.Choice(["AtoB", "BtoA"]),
              help="Which way to translate with a two-way (CycleGAN) model [its only direction, else AtoB].")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def eval_command(model: str, data: str, split: str, data_format: str, baselines: tuple[str, ...],
                 norm_stats: str | None, out_dir: str | None, contact_sheet: str | None, device: str,
                 precision: str, batch_size: int | str, direction: str | None, as_json: bool) -> None:
    """Score a model against the targets of a paired dataset split.

    Images are translated at native size and quantised to 8 bits before scoring.  L1 is the
    mean absolute error with pixels in [0, 1]; PSNR is in dB with peak 1; SSIM uses an 11x11
    Gaussian window.  The networks run in fp32, one image at a time, unless --precision or
    --batch-size say otherwise.
    """
    from rich.console import Console
    from rich.markup import escape

    from ..devices import resolve_device
    from ..inference.engine import resolve_precision
    from ..inference.model import load_model
    from ..metrics.evaluate import check_outputs, evaluate, untrained_like
    from .tables import name_table, print_table

    dev = resolve_device(device)
    precision = resolve_precision(precision, dev)  # 'auto' -> what it is here, shown in the title
    check_outputs(out_dir, contact_sheet)  # before any work, not after the last image
    loaded = load_model(model, device=dev, direction=direction)
    models = {"model": loaded}
    if "untrained" in baselines:
        models["untrained"] = untrained_like(loaded)
    if "identity" in baselines:
        models["identity"] = None
    results = evaluate(models, data, split, norm_stats=norm_stats, out_dir=out_dir, contact_sheet=contact_sheet,
                       format=data_format, precision=precision, batch_size=batch_size)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in results], indent=2))
        return
    title = f"{data} / {split}" + ("" if precision == "fp32" else f" ({precision})")
    rows = [(escape(r.name), str(r.count), f"{r.l1:.4f}", f"{r.psnr:.2f}", f"{r.ssim:.4f}") for r in results]
    print_table(name_table(("", "images", "L1 (lower is better)", "PSNR dB", "SSIM"), rows, names=("",),
                           title=escape(title)))
    if contact_sheet:
        Console().print(f"contact sheet: {contact_sheet}")
