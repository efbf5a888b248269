"""``imgtrans export``: a trained model as one verified ONNX, TorchScript or torch.export file."""
from __future__ import annotations

import click

from ..core.directions import DIRECTIONS
from .params import MODEL


@click.command("export")
@click.option("--model", "-m", required=True, type=MODEL,
              help="A .safetensors checkpoint (from `imgtrans train`), a run directory (its model.safetensors), "
                   "or zoo:NAME.")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="The file to write (.onnx, .pt for TorchScript, .pt2 for torch.export).")
@click.option("--format", "fmt", type=click.Choice(["onnx", "torchscript", "pt2"]),
              help="What to write.  [default: from the suffix of --output]")
@click.option("--direction", type=click.Choice(DIRECTIONS),
              help="Which way of a two-way (CycleGAN) model to export [the model's only direction, else AtoB].")
@click.option("--norm-stats", type=click.Choice(["running", "instance"]),
              help="Batch-norm statistics baked into the graph (as translate's --norm-stats). "
                   "[default: the model's recommendation]")
@click.option("--opset", type=click.IntRange(7), help="ONNX opset version (--format onnx only). [default: torch's]")
@click.option("--overwrite", is_flag=True, help="Replace --output when it exists.")
@click.option("--dropout", is_flag=True,
              help="Refused: dropout at inference (translate's --dropout) draws random masks per image and "
                   "cannot be exported; exported graphs run with dropout off.")
def export_command(model: str, output: str, fmt: str | None, direction: str | None, norm_stats: str | None,
                   opset: int | None, overwrite: bool, dropout: bool) -> None:
    """Export a model's generator as one file that runs without imgtrans, and verify it.

    The graph takes float32 N x C x H x W in [-1, 1] of any batch, height and width and returns the
    same size: padding to the network's stride and the crop are inside it, the normalisation mode
    is baked in, dropout is off.  After writing, the file is run (onnxruntime, torch.jit.load or
    torch.export.load) on two inputs of odd sizes and compared with `imgtrans translate --precision
    fp32`; more than 1 grey level of difference is an error and the file is not left behind.
    An ONNX file runs with `imgtrans translate --model FILE.onnx`.  Needs the [onnx] extra for ONNX.

    \b
    Examples:
      imgtrans export --model runs/demo -o demo.onnx    (its model.safetensors)
      imgtrans export --model zoo:basemap_a2b -o basemap.pt2
      imgtrans export --model runs/cyclegan --direction BtoA -o relief2sat.onnx
    """
    from ..inference.export import export

    report = export(model, output, format=fmt, direction=direction, norm_stats=norm_stats, opset=opset,
                    dropout=dropout, overwrite=overwrite,
                    on_message=lambda line: click.echo(line, err=True))
    sizes = " and ".join("x".join(map(str, s)) for s in report.shapes)
    click.echo(f"wrote {report.path} ({report.format}, {report.direction}, norm_stats {report.norm_stats}); "
               f"verified with {report.runtime} on {sizes}: max difference from eager fp32 "
               f"{report.max_grey_levels:.4f} grey levels")
    for extra in report.files[1:]:
        click.echo(f"  and its weights {extra} (the model is over 2 GB)")
