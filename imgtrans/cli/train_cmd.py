"""``imgtrans train RECIPE``: resolve the config (defaults -> TOML -> options) and train."""
from __future__ import annotations

import os
from typing import Any

import click

from ..core.directions import DIRECTIONS
from .params import ALSO_ACCEPTED, THREADS, TRAIN_PRECISION, apply_threads
from .recipe_options import META_KEY, TrainCommand, recipe_layer

#: command-line option -> (config section, key)
OPTION_KEYS: dict[str, tuple[str, str]] = {
    "data": ("data", "source"),
    "format": ("data", "format"),
    "direction": ("data", "direction"),
    "batch_size": ("data", "batch_size"),
    "load_size": ("data", "load_size"),
    "crop_size": ("data", "crop_size"),
    "max_items": ("data", "max_items"),
    "strict": ("data", "strict"),
    "epochs": ("optim", "epochs"),
    "epochs_decay": ("optim", "epochs_decay"),
    "max_steps": ("optim", "max_steps"),
    "lr": ("optim", "lr"),
    "out": ("run", "out"),
    "seed": ("run", "seed"),
    "device": ("run", "device"),
    "validate_every": ("run", "validate_every"),
    "val_metrics": ("run", "val_metrics"),
    "keep_best": ("run", "keep_best"),
    "fid_weights": ("run", "fid_weights"),
    "tensorboard": ("run", "tensorboard"),
    "precision": ("run", "precision"),
    "compile": ("run", "compile"),
    "sync_bn": ("run", "sync_bn"),
}


def options_layer(options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    layer: dict[str, dict[str, Any]] = {}
    for option, value in options.items():
        if value is not None and option in OPTION_KEYS:
            section, key = OPTION_KEYS[option]
            layer.setdefault(section, {})[key] = value
    return layer


@click.command("train", cls=TrainCommand)
@click.argument("recipe", required=False)
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False),
              help="Continue the run in this directory from its newest checkpoint, with its own settings "
                   "(only --epochs, --epochs-decay and --max-steps may be given, to extend it).")
@click.option("--data", help="Dataset name (see `imgtrans list dataset`) or folder (aligned A|B or A/ B/).")
@click.option("--format", metavar="NAME",
              help="Dataset format (see `imgtrans list dataset_format`) [auto: the catalogue's layout, or detected].")
@click.option("--out", type=click.Path(file_okay=False), help="Run directory [default: runs/RECIPE-DATA-TIME].")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML file of settings (applied before options).")
@click.option("--set", "sets", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override any setting, e.g. --set generator.ngf=32 --set optim.beta1=0.9 (repeatable).")
@click.option("--epochs", type=click.IntRange(0), help="Epochs at the initial learning rate [100].")
@click.option("--epochs-decay", type=click.IntRange(0), help="Epochs of linear decay to zero after that [100].")
@click.option("--max-steps", type=click.IntRange(1), help="Stop after this many steps (quick trials).")
@click.option("--batch-size", type=click.IntRange(1), help="Images per step [1].")
@click.option("--lr", type=click.FloatRange(0, min_open=True), help="Adam learning rate [2e-4].")
@click.option("--load-size", type=click.IntRange(1), help="Resize images to this before cropping [286].")
@click.option("--crop-size", type=click.IntRange(1), help="Random crop size used for training [256].")
@click.option("--max-items", "--max-dataset-size", "max_items", type=click.IntRange(1),
              help="Use at most this many training items.")
@click.option("--strict", is_flag=True, default=None,
              help="Stop at the first unreadable image instead of skipping it.")
@click.option("--direction", type=click.Choice(DIRECTIONS), help="Which side is the input [AtoB].")
@click.option("--seed", type=int, help="Random seed [0].")
@click.option("--device", help="auto, cpu, cuda or cuda:N [auto].")
@click.option("--validate-every", type=click.IntRange(0), metavar="N",
              help="Score the val split every N epochs and at the end (records in metrics.jsonl) [0: off].")
@click.option("--val-metric", "val_metrics", multiple=True, metavar="NAME",
              help="A metric validation scores (repeatable; `imgtrans list metric`, fid and kid included) "
                   "[l1, psnr, ssim].")
@click.option("--keep-best", metavar="METRIC",
              help="Also keep the best checkpoint by this validation figure (l1, fid, BtoA_l1 for the way back; "
                   "its own direction decides): checkpoints/best.safetensors and model_best.safetensors. "
                   "Needs --validate-every.")
@click.option("--fid-weights", type=click.Path(dir_okay=False, resolve_path=True), metavar="FILE",
              help="A local copy of the FID Inception weights for --val-metric fid/kid (sha256 checked) "
                   "[downloaded and cached].")
@click.option("--tensorboard", is_flag=True, default=None, help="Also log scalars for TensorBoard (if installed).")
@click.option("--precision", type=TRAIN_PRECISION,
              help="Arithmetic: bf16-mixed (or bf16) computes in bfloat16 with fp32 weights (1.5x faster than fp32 on "
                   "CPUs with AVX-512 BF16, same quality; docs/training.md); fp16-mixed (fp16) adds loss scaling; auto "
                   f"picks bf16-mixed where the hardware has it, else fp32 [auto]. {ALSO_ACCEPTED}")
@click.option("--compile", is_flag=True, default=None, help="torch.compile the networks (slow start; measure first).")
@click.option("--nproc", "--nproc-per-node", "nproc", type=click.IntRange(1), metavar="N",
              help="Train with N processes on this machine (one per GPU; via torchrun). For several machines "
                   "run `torchrun ... -m imgtrans train` yourself (docs/training.md).")
@click.option("--sync-bn", is_flag=True, default=None,
              help="With several processes: batch-norm statistics over all of them (CUDA only).")
@click.option("--init", "inits", multiple=True, metavar="SLOT=SOURCE",
              help="Start SLOT from existing weights: an imgtrans model or checkpoint (FILE[#NETWORK]), zoo:NAME, "
                   "or a reference .pth (repeatable), e.g. --init generator=zoo:maps_a2b.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run directory given with --out.")
@click.option("--allow-data-change", is_flag=True,
              help="With --resume: continue although the training files or their contents differ from what "
                   "the run trained on (refused otherwise).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@THREADS
@click.option("--print-config", is_flag=True,
              help="Print the fully resolved settings (TOML, usable with --config) and exit without training.")
def train_command(recipe: str | None, resume_dir: str | None, config_file: str | None, sets: tuple[str, ...],
                  inits: tuple[str, ...], nproc: int | None, overwrite: bool, quiet: bool, print_config: bool,
                  allow_data_change: bool, threads: int | None, **options: Any) -> None:
    """Train RECIPE (pix2pix, cyclegan, ...) on a dataset.

    Settings come from the recipe's defaults, then --config FILE.toml, then --set, then the
    options below (`imgtrans train RECIPE --help` adds the recipe's own).  The run directory
    receives config.toml (the resolved settings), metrics.jsonl, previews/ and .safetensors
    checkpoints; model.safetensors holds the generator of every direction the recipe trains,
    ready for `imgtrans translate` (--direction BtoA picks the way back of a CycleGAN).

    \b
    Examples:
      imgtrans train pix2pix --data facades --direction BtoA
      imgtrans train cyclegan --data horse2zebra --lambda-identity 0
      imgtrans train pix2pix --data basemap --set generator.ngf=32 --epochs 5 --epochs-decay 5
      imgtrans train pix2pix --data ./my_pairs --config configs/cpu_demo.toml
      imgtrans train --resume runs/basemap --epochs-decay 150
      imgtrans train pix2pix --data maps --nproc 4          # 4 GPUs, batch 1 each
      torchrun --nproc-per-node 4 -m imgtrans train pix2pix --data maps
    """
    from ..core import config as cfg
    from ..core.plugin_host import get_host
    from ..training.resume import resume_config_for
    from ..training.trainer import launch_resume, launch_run, train
    from ..util.terminal import rich_console

    host = get_host()
    console = rich_console(stderr=True)
    declared = click.get_current_context().meta.get(META_KEY, ([], {}))[1]
    recipe_values = {name: options.pop(name) for name in list(options) if name in declared}
    options["val_metrics"] = list(options["val_metrics"]) or None  # not given: the config's
    if resume_dir is not None:
        refused = [declared[n].flag for n, v in recipe_values.items() if v is not None]
        refused += [flag for flag, given in (("--config", config_file), ("--set", sets), ("--overwrite", overwrite),
                                             ("--init", inits)) if given]
        config = resume_config_for(resume_dir, host.registry, recipe=recipe, options=options, refused=refused)
        config.run.progress = not quiet
        if print_config:
            click.echo(config.to_toml(), nl=False)
            return
        if nproc is not None and nproc > 1:
            if allow_data_change:
                raise click.UsageError("--allow-data-change cannot be passed on to --nproc processes: resume "
                                       "once on one process to accept the new data, then with --nproc")
            _use_threads(threads, nproc, console)
            launch_resume(nproc, resume_dir, options, quiet=quiet)
            return
        _use_threads(threads, nproc, console)
        _report(console, train(config, resume=True, console=console, allow_data_change=allow_data_change))
        return
    if recipe is None:
        raise click.UsageError("Missing argument 'RECIPE' (or pass --resume RUN_DIR).")
    layers = []
    if config_file:
        layers.append(cfg.load_toml(config_file))
    # One command-line layer: `--generator unet --set generator.num_downs=6` picks the component
    # and sets its arguments together (a separate layer would drop them on the name change).
    command_line = options_layer(options)
    for section, values in recipe_layer(recipe_values, declared).items():
        command_line.setdefault(section, {}).update(values)
    for section, values in cfg.parse_set_options(sets).items():
        command_line.setdefault(section, {}).update(values)
    if inits:
        from ..training.building import parse_init

        command_line.setdefault("run", {})["init"] = parse_init(inits)
    layers.append(command_line)
    config = cfg.resolve(recipe, host.registry, layers)
    config.run.progress = not quiet
    if print_config:  # every check of resolve has run: what is printed would train
        click.echo(config.to_toml(), nl=False)
        return
    if nproc is not None and nproc > 1:  # resolved and validated here, so mistakes show once
        _use_threads(threads, nproc, console)
        launch_run(nproc, config, overwrite=overwrite, quiet=quiet)
        return
    _use_threads(threads, nproc, console)
    _report(console, train(config, overwrite=overwrite, console=console))


def _use_threads(threads: int | None, nproc: int | None, console: Any) -> None:
    """``--threads`` for this process, or (with ``--nproc``) for each process it starts through
    ``OMP_NUM_THREADS``; a torchrun worker keeps the ``OMP_NUM_THREADS`` its launcher set."""
    if nproc is not None and nproc > 1:
        if threads:
            os.environ["OMP_NUM_THREADS"] = str(threads)
    elif int(os.environ.get("WORLD_SIZE", "1")) == 1:
        apply_threads(threads, console)


def _report(console: Any, result: Any) -> None:
    import sys

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # A finished torchrun worker leaves now: its process group is destroyed and rank 0 has
        # written everything, and an orderly interpreter shutdown occasionally aborted in C++
        # teardown (gloo) after a successful run, turning success into a failed launch.
        if os.environ.get("RANK", "0") == "0":  # one report per distributed run
            _print_done(console, result)
        console.file.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    _print_done(console, result)


def _print_done(console: Any, result: Any) -> None:
    last = result.history[-1] if result.history else {}
    speed = f", {last['img_per_s']:.2f} img/s" if last else ""
    console.print(f"[green]done[/]: {result.steps} steps{speed}; model: {result.model_path}")
    report = result.run_dir / "index.html"
    if report.is_file():  # the run's page: config, metrics, validation, loss curves, previews
        console.print(f"report: {report}", highlight=False, markup=False, soft_wrap=True)
