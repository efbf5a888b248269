"""``imgtrans zoo``: list, inspect, pull, import and verify zoo models."""
from __future__ import annotations

import json
import sys
from dataclasses import asdict

import click

from ..core.directions import DIRECTIONS

MIRROR_HELP = "Base URL (or folder) to download from instead of the published one [env: IMGTRANS_ZOO_MIRROR]."


@click.group("zoo")
def zoo_group() -> None:
    """The model zoo: named, verified checkpoints usable as `--model zoo:NAME` anywhere.

    \b
    Examples:
      imgtrans zoo list
      imgtrans zoo info basemap_a2b
      imgtrans translate --model zoo:basemap_a2b tiles/ out/     (works offline: shipped)
      imgtrans zoo pull maps_a2b --mirror http://my-mirror/pix2pix/
      imgtrans zoo import sat2map.pth -o sat2map.safetensors
    """


@zoo_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def list_models(as_json: bool) -> None:
    """List zoo models, with whether each is already cached."""
    from rich.markup import escape

    from ..zoo.store import entries, is_cached
    from .tables import name_table, print_table

    zoo = entries()
    if as_json:
        click.echo(json.dumps([{**_public(e), "cached": is_cached(e)} for e in zoo.values()], indent=2))
        return
    rows = []
    for e in zoo.values():
        domains = f"{e.domains.get('A', 'A')} -> {e.domains.get('B', 'B')}" if e.direction == "AtoB" else \
            f"{e.domains.get('B', 'B')} -> {e.domains.get('A', 'A')}"
        size = f"{e.size / 1e6:.1f} MB" if e.size else (f"~{e.size_mb:g} MB" if e.size_mb else "")
        rows.append((escape(e.name), e.recipe, e.generator["name"], escape(domains), escape(e.dataset), size,
                     "[green]yes" if is_cached(e) else "no"))
    print_table(name_table(("name", "recipe", "generator", "A -> B", "dataset", "size", "cached"), rows,
                           names=("name", "recipe", "generator", "dataset")),
                optional=("generator", "size", "recipe", "dataset"))


@zoo_group.command("info")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def info(name: str, as_json: bool) -> None:
    """Everything the manifest says about NAME, and where it is cached."""
    from ..zoo.store import converted_path, get_entry, is_cached

    entry = get_entry(name.removeprefix("zoo:"))
    data = {**_public(entry), "cached": is_cached(entry), "cache_path": str(converted_path(entry))}
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    width = max(map(len, data))
    for key, value in data.items():
        if value not in (None, "", {}, []):
            click.echo(f"{key:<{width}}  {json.dumps(value) if isinstance(value, (dict, list)) else value}")


@zoo_group.command("pull")
@click.argument("names", nargs=-1, required=True)
@click.option("--mirror", help=MIRROR_HELP)
@click.option("--force", is_flag=True, help="Download and convert again even if cached.")
def pull_models(names: tuple[str, ...], mirror: str | None, force: bool) -> None:
    """Download, verify and convert NAMES into the cache (once; later calls are instant)."""
    from ..zoo.store import pull

    for name in names:
        result = pull(name.removeprefix("zoo:"), mirror=mirror, force=force)
        click.echo(f"{result.entry.name}: {'downloaded' if result.downloaded else 'cached'} -> {result.path}")


@zoo_group.command("import")
@click.argument("source", type=click.Path(exists=True))
@click.option("--generator", help="Architecture the weights belong to [recognised from the weights' keys].")
@click.option("--norm", type=click.Choice(["batch", "instance", "none"]), help="Normalisation the weights were trained with.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Other generator arguments, e.g. ngf=32.")
@click.option("--direction", type=click.Choice(DIRECTIONS), default="AtoB", show_default=True,
              help="What a single .pth maps (BtoA: domain B to A).")
@click.option("--epoch", default="latest", show_default=True,
              help="With a run directory: which {EPOCH}_net_G_A.pth / _net_G_B.pth to take.")
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="Output .safetensors file.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists (never the input file itself).")
def import_pth(source: str, generator: str | None, norm: str | None, sets: tuple[str, ...], direction: str,
               epoch: str, out: str, overwrite: bool) -> None:
    """Convert reference-implementation weights into a self-describing checkpoint.

    SOURCE is a generator .pth (one direction), or a reference CycleGAN run directory whose
    EPOCH_net_G_A.pth and EPOCH_net_G_B.pth become one two-way model file (translate it either
    way with --direction).  The architecture is recognised from the weights' keys and shapes
    among the registered generators' reference settings, unless --generator names it.

    Only tensors are read (torch.load with weights_only=True): nothing in the file is executed.
    Known variants of the public files (a `module.` prefix, missing `num_batches_tracked`, stale
    instance-norm statistics) are handled; anything else fails with the missing and unexpected keys.
    An existing OUT is refused unless --overwrite is given; the input file is never replaced.

    \b
    Examples:
      imgtrans zoo import sat2map.pth -o sat2map.safetensors
      imgtrans zoo import checkpoints/horse2zebra/ -o horse2zebra.safetensors
    """
    from pathlib import Path

    from ..core.config import parse_value
    from ..util.errors import ConfigError
    from ..zoo.importer import import_reference, import_reference_run

    args = {}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        args[key.strip()] = parse_value(value.strip())
    if norm:
        args["norm"] = norm
    if Path(source).is_dir():
        path = import_reference_run(Path(source), Path(out), generator=generator, generator_args=args, epoch=epoch,
                                    overwrite=overwrite)
    else:
        path = import_reference(source, out, generator=generator, generator_args=args,
                                metadata={"direction": direction}, overwrite=overwrite)
    click.echo(f"wrote {path}")


@zoo_group.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def verify(as_json: bool) -> None:
    """Re-hash cached downloads, converted and shipped models; exit status 1 on any mismatch."""
    from ..zoo.store import verify_cache

    rows = verify_cache()
    if as_json:
        click.echo(json.dumps([{"status": r.status, "name": r.name, "path": str(r.path)} for r in rows], indent=2))
    else:
        width = max([28, *(len(r.name) for r in rows)])  # names are never cut
        for row in rows:
            click.echo(f"{row.status:<10} {row.name:<{width}} {row.path}")
        if not rows:
            click.echo("nothing cached yet")
    if any(r.status in ("mismatch", "missing", "corrupt") for r in rows):
        sys.exit(1)


def _public(entry) -> dict:
    data = asdict(entry)
    data.pop("origin", None)
    return data
