"""``imgtrans translate``: run a trained model on a file or a folder of images."""
from __future__ import annotations

import sys

import click


@click.command("translate")
@click.option("--model", "-m", required=True, help="A .safetensors checkpoint (from `imgtrans train`).")
@click.argument("inputs", type=click.Path(exists=True))
@click.argument("output", type=click.Path())
@click.option("--batch-size", type=click.IntRange(1), default=1, show_default=True,
              help="Images per forward pass (same-size images are batched together).")
@click.option("--norm-stats", type=click.Choice(["running", "instance"]),
              help="Batch-norm statistics: 'running' (deterministic, eval mode) or 'instance' (each "
                   "image's own, as the reference's default test). [default: the model's recommendation]")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--overwrite", is_flag=True, help="Replace outputs that already exist.")
def translate_command(model: str, inputs: str, output: str, batch_size: int, norm_stats: str | None,
                      device: str, overwrite: bool) -> None:
    """Translate INPUTS (an image or a folder of images) into OUTPUT (a folder, or a .png for one image).

    One PNG per input, named after it, at the input's exact size: images are padded to the
    network's stride and cropped back, so any size works.  The checkpoint describes its own
    architecture; no other flag is needed.  Unreadable inputs are listed at the end and the
    exit status is 1; the others are still written.
    """
    from rich.console import Console
    from rich.progress import Progress

    from ..inference.model import load_model
    from ..inference.translate import collect_inputs, translate

    console = Console(stderr=True)
    loaded = load_model(model, device=device)
    paths = collect_inputs(inputs)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("translating", total=len(paths))
        report = translate(loaded, inputs, output, batch_size=batch_size, norm_stats=norm_stats,
                           overwrite=overwrite, on_progress=lambda n: progress.advance(task, n))
    console.print(f"wrote {len(report.written)} image(s) to {output}")
    if report.failed:
        console.print(f"[red]{len(report.failed)} input(s) failed:")
        for path, reason in report.failed:
            console.print(f"  {path}: {reason}")
        sys.exit(1)
