"""``imgtrans translate``: run a trained model on a file or a folder of images."""
from __future__ import annotations

import sys
import time

import click

from ..core.directions import DIRECTIONS
from .params import ALSO_ACCEPTED, INFERENCE_PRECISION, MODEL, THREADS, BatchSize, apply_threads


@click.command("translate")
@click.option("--model", "-m", required=True, type=MODEL,
              help="A .safetensors checkpoint (from `imgtrans train`), a run directory (its model.safetensors), "
                   "zoo:NAME, or a .onnx file from `imgtrans export`.")
@click.argument("inputs", type=click.Path(exists=True))
@click.argument("output", type=click.Path())
@click.option("--recursive", "-r", is_flag=True,
              help="Also translate the images in sub-folders of INPUTS, keeping the sub-folder structure under OUTPUT.")
@click.option("--format", "fmt", type=click.Choice(["png", "jpg", "webp", "tif"]),
              help="Output format: png (lossless), jpg or webp (quality 95), tif (lossless).  [default: png, or "
                   "the suffix of a single output file]")
@click.option("--overwrite", is_flag=True, help="Replace outputs that already exist (never an input).")
@click.option("--skip-existing", is_flag=True,
              help="Skip inputs whose output already exists (to resume a big job); they are counted as skipped.")
@click.option("--batch-size", type=BatchSize(), default="auto", show_default=True,
              help="Images per forward pass; same-size images are batched together.  'auto': as many as fit "
                   "8 images of 256x256 on CPU (32 on CUDA), so huge images go one at a time.")
@click.option("--precision", type=INFERENCE_PRECISION, default="auto", show_default=True,
              help="Arithmetic of the forward pass.  'auto': bf16 on CPUs with native bf16 (AVX-512 BF16 / AMX) "
                   "or fp16 on CUDA, but only for models whose outputs it moves by at most 2 grey levels (measured on "
                   "the first batch, remembered per model file), fp32 otherwise; an explicit value is always obeyed. "
                   f"{ALSO_ACCEPTED}")
@click.option("--channels-last/--no-channels-last", default=None,
              help="Run the network in NHWC memory layout.  [default: where it was measured to help]")
@click.option("--compile", "compile_", is_flag=True,
              help="torch.compile the network (slow start, may be faster for big jobs); falls back to eager "
                   "with a warning where unavailable.")
@click.option("--tile", type=click.IntRange(0), default=1024, show_default=True,
              help="Images with a side larger than this are translated in overlapping tiles of this size "
                   "(bounded memory); 0 = never tile.")
@click.option("--tile-overlap", type=click.IntRange(0), default=128, show_default=True,
              help="Pixels of overlap between neighbouring tiles, blended smoothly.")
@click.option("--norm-stats", type=click.Choice(["running", "instance"]),
              help="Batch-norm statistics: 'running' (deterministic, eval mode) or 'instance' (each "
                   "image's own, as the reference's default test). [default: the model's recommendation]")
@click.option("--dropout", is_flag=True,
              help="Keep dropout active at inference, as the pix2pix paper did (varied outputs); seeded per "
                   "image by --seed and the image's path, so results do not depend on batching.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --dropout.")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when available, else CPU), cpu, "
              "cuda or cuda:N.")
@click.option("--direction", type=click.Choice(DIRECTIONS),
              help="Which way to translate with a two-way (CycleGAN) model: BtoA runs its generator back "
                   "[the model's only direction, else AtoB].")
@THREADS
def translate_command(model: str, inputs: str, output: str, direction: str | None, recursive: bool, fmt: str | None, overwrite: bool,
                      skip_existing: bool, batch_size: int | str, precision: str, channels_last: bool | None,
                      compile_: bool, tile: int, tile_overlap: int, norm_stats: str | None, dropout: bool,
                      seed: int, device: str, threads: int | None) -> None:
    """Translate INPUTS (an image or a folder of images) into OUTPUT (a folder, or an image file for one image).

    One output per input, named after it, at the input's exact size: images are padded to the
    network's stride and cropped back (large ones are tiled), so any size works.  The checkpoint
    describes its own architecture; no other flag is needed.  Unreadable inputs are listed at the
    end and the exit status is 1; the others are still written.  Outputs are written atomically,
    so an interrupted run leaves no partial file: rerun it with --skip-existing to resume.

    Inputs are never overwritten.  Before the model is loaded, the job is refused (exit status 2)
    when two inputs would write the same output, an output would be one of the inputs, OUTPUT
    cannot be written, or INPUTS holds no supported image.  Exit status: 0 all written (or
    skipped), 1 some inputs failed, 2 refused, 130 interrupted.

    \b
    Examples:
      imgtrans translate --model zoo:basemap_a2b satellite/ relief/
      imgtrans translate --model runs/demo tile.png out.png   (a run directory)
      imgtrans translate --model runs/cyclegan --direction BtoA relief/ sat/
      imgtrans translate --model demo.onnx photos/ out/ --skip-existing
    """
    if overwrite and skip_existing:
        raise click.UsageError("--overwrite and --skip-existing contradict each other: pass one of them")
    from pathlib import Path

    from ..inference.plan import plan
    from ..util.errors import ImgtransError
    from ..zoo.store import check_model_source

    # every refusal (an unknown model, colliding names, an input as output, unwritable OUTPUT, no
    # images, nothing left to write) before torch is imported or the model loaded
    check_model_source(model)
    planned = plan(Path(inputs), output, recursive=recursive, format=fmt, overwrite=overwrite,
                   skip_existing=skip_existing)  # the one scan of INPUTS: translate() works from it
    if planned.failed and len(planned.failed) == len(planned.inputs):
        raise ImgtransError(f"every output already exists in {output} ({len(planned.failed)} file(s), e.g. "
                            f"{planned.failed[0][0].name}); pass --overwrite to replace them or --skip-existing "
                            "to leave them")

    from rich.progress import Progress

    from ..inference.model import load_model
    from ..inference.translate import translate
    from ..util.devices import resolve_device
    from ..util.terminal import rich_console

    console = rich_console(stderr=True)
    dev = resolve_device(device)
    apply_threads(threads, console)
    loaded = load_model(model, device=dev, direction=direction)
    start = time.perf_counter()
    try:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("translating", total=len(planned.inputs))
            report = translate(loaded, inputs, output, batch_size=batch_size, norm_stats=norm_stats,
                               precision=precision, channels_last=channels_last, compile=compile_, tile=tile,
                               tile_overlap=tile_overlap, dropout=dropout, seed=seed, recursive=recursive,
                               format=fmt, overwrite=overwrite, skip_existing=skip_existing,
                               on_progress=lambda n: progress.advance(task, n), planned=planned)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: every output written so far is complete; "
                      "rerun with --skip-existing to resume")
        sys.exit(130)
    seconds = time.perf_counter() - start
    rate = f", {len(report.written) / seconds:.1f} img/s" if report.written and seconds > 0 else ""
    console.print(f"wrote {len(report.written)} image(s) to {output} ({report.precision}{rate})")
    if report.precision_note:
        console.print(f"precision: {report.precision_note}", markup=False, highlight=False, soft_wrap=True)
    if report.skipped:
        console.print(f"skipped {len(report.skipped)} input(s) whose output exists")
    if report.failed:
        console.print(f"[red]{len(report.failed)} input(s) failed:")
        for path, reason in report.failed:  # most reasons already name the input (DataError's rule)
            line = reason if str(path) in reason else f"{path}: {reason}"
            console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(1)
