"""``imgtrans data``: the dataset catalogue, and inspection of any dataset folder."""
from __future__ import annotations

import json

import click


@click.group("data")
def data_group() -> None:
    """Datasets: list the catalogue, download, prepare, and inspect folders.

    \b
    Examples:
      imgtrans data list
      imgtrans data download facades            (also happens on first `train --data facades`)
      imgtrans data info facades                (or any folder: imgtrans data info ./my_pairs)
      imgtrans data prepare cityscapes --from ~/Downloads/cityscapes
      imgtrans data make edges ~/photos/cats cats_edges   (pairs made from any photos)
    """


@data_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def list_datasets(as_json: bool) -> None:
    """Every registered dataset, how it is obtained, and whether it is in the cache."""
    from rich.markup import escape

    from ..core.plugin_host import get_host
    from ..data.catalog import is_ready
    from .tables import name_table, print_table

    catalog = get_host().catalog
    entries = [catalog.get(n) for n in catalog.names()]
    if as_json:
        click.echo(json.dumps([{"name": e.name, "description": e.description, "paired": e.paired,
                                "domains": list(e.domains), "layout": e.layout, "how": e.how, "url": e.url,
                                "splits": e.splits, "licence": e.licence, "plugin": e.plugin,
                                "cached": is_ready(e.name)} for e in entries], indent=2))
        return
    rows = []
    for e in entries:
        # counts where the catalogue knows them, else the split names (CycleGAN's sets list only those)
        splits = ", ".join(f"{k} {v}" if v > 1 else k for k, v in e.splits.items())
        rows.append((escape(e.name), "yes" if e.paired else "no", escape(f"{e.domains[0]} -> {e.domains[1]}"),
                     splits, escape(e.how), f"{e.size_mb:g} MB" if e.size_mb else "",
                     "[green]yes" if is_ready(e.name) else "no"))
    print_table(name_table(("name", "paired", "A -> B", "splits", "how", "size", "cached"), rows),
                optional=("size", "how", "paired"))


@data_group.command("info")
@click.argument("source")
@click.option("--format", "data_format", default="auto", show_default=True, metavar="NAME",
              help="Read the folder as this dataset format; auto: the catalogue's layout, or detected.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def info(source: str, data_format: str, as_json: bool) -> None:
    """Format, image counts per split and image sizes of a dataset NAME or folder PATH.

    A catalogue name that is not cached yet is described from the catalogue without downloading.
    The format shown is the one train and eval would use (with the same --format).
    """
    from pathlib import Path

    from ..core.plugin_host import get_host
    from ..data.catalog import dataset_path, is_ready
    from ..data.data_info import describe_folder

    host = get_host()
    path = Path(source).expanduser()
    described: dict = {}
    if not path.exists() and source in host.catalog:
        entry = host.catalog.get(source)
        described = {"name": entry.name, "description": entry.description, "domains": list(entry.domains),
                     "layout": entry.layout, "how": entry.how, "url": entry.url, "licence": entry.licence,
                     "notes": entry.notes, "cached": is_ready(entry.name), "path": str(dataset_path(entry.name))}
        if not as_json:
            click.echo(f"{entry.name}: {entry.description}")
            click.echo(f"  domains: A = {entry.domains[0]}, B = {entry.domains[1]}; "
                       f"layout: {entry.layout}; {entry.how}")
            for key, label in (("url", "url"), ("licence", "licence"), ("notes", "note")):
                if described[key]:
                    click.echo(f"  {label}: {described[key]}")
            if not described["cached"]:
                click.echo(f"  not cached (would go to {described['path']})")
        if not described["cached"]:
            if as_json:
                click.echo(json.dumps(described, indent=2))
            return
        path = dataset_path(entry.name)
    elif not path.exists():
        from ..util.errors import DataError

        raise DataError(f"{source} is neither a folder nor a known dataset ({', '.join(host.catalog.names())})")
    report = describe_folder(path, host.registry, host.catalog, data_format)
    if as_json:
        splits = [{"name": split.name, "count": split.count,
                   "sizes": [{"width": w, "height": h, "count": n} for (w, h), n in split.sizes.most_common()]}
                  for split in report.splits]
        click.echo(json.dumps({**described, "path": str(path), "format": report.format, "splits": splits}, indent=2))
        return
    click.echo(f"{path}: format {report.format}")
    for split in report.splits:
        sizes = ", ".join(f"{w}x{h} ({n})" for (w, h), n in split.sizes.most_common(3))
        more = " ..." if len(split.sizes) > 3 else ""
        click.echo(f"  {split.name:<8} {split.count:>7} images   sizes: {sizes}{more}")


@data_group.command("download")
@click.argument("names", nargs=-1, required=True)
@click.option("--mirror", help="Base URL (or folder) to download from instead [env: IMGTRANS_DATA_MIRROR].")
@click.option("--keep-archive", is_flag=True, help="Keep the downloaded archive after extraction.")
def download(names: tuple[str, ...], mirror: str | None, keep_archive: bool) -> None:
    """Download, safely extract and verify datasets into the cache (resumes an interrupted download)."""
    from ..core.plugin_host import get_host
    from ..data.catalog import download_dataset, is_ready, resolve_dataset

    catalog = get_host().catalog
    for name in names:
        entry = catalog.get(name)
        if is_ready(name):
            click.echo(f"{name}: already cached")
            continue
        if entry.url:
            path = download_dataset(entry, mirror=mirror, keep_archive=keep_archive, progress=click.echo)
        else:
            path = resolve_dataset(name, catalog, progress=click.echo)
        click.echo(f"{name}: ready in {path}")


@data_group.command("prepare")
@click.argument("name")
@click.option("--from", "source", required=True, type=click.Path(file_okay=False),
              help="Folder with the files you downloaded yourself.")
def prepare(name: str, source: str) -> None:
    """Build a dataset that cannot be redistributed (e.g. cityscapes) from your own download."""
    from pathlib import Path

    from ..core.plugin_host import get_host
    from ..data.catalog import prepare_dataset

    entry = get_host().catalog.get(name)
    path = prepare_dataset(entry, Path(source), progress=click.echo)
    click.echo(f"{name}: ready in {path}")


@data_group.command("make")
@click.argument("task")
@click.argument("photos", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path())
@click.option("--set", "settings", multiple=True, metavar="TASK.NAME=VALUE",
              help="A parameter of the task, e.g. edges.sigma=3 (see `imgtrans info pair_maker TASK`).")
@click.option("--seed", default=0, show_default=True, help="Seed of the random draws and of the split.")
@click.option("--split", "split_text", default="0.8,0.1,0.1", show_default=True, metavar="TRAIN,VAL,TEST",
              help="Fractions of the photos in train/, val/ and test/.")
@click.option("--size", default=256, show_default=True, help="Side of the square images (centre crop, then resize).")
@click.option("--image-format", default="png", show_default=True, type=click.Choice(["png", "jpg"]),
              help="File format of the pairs (jpg: quality 95, no chroma subsampling).")
@click.option("--workers", type=click.IntRange(min=1), metavar="N", help="Threads  [default: CPUs, at most 8].")
@click.option("--overwrite", is_flag=True, help="Replace OUT if an earlier `data make` wrote it.")
def make(task: str, photos: str, out: str, settings: tuple[str, ...], seed: int, split_text: str, size: int,
         image_format: str, workers: int | None, overwrite: bool) -> None:
    """Make a paired dataset from a folder of PHOTOS: A derived by TASK, B the photo.

    TASK is a pair maker (`imgtrans list pair_maker`): edges, colorize, superres, denoise,
    inpaint, jpeg, blur, or one a plugin adds.  OUT gets train/, val/ and test/ with A|B side by
    side (the aligned format) and make.json; then `imgtrans train pix2pix --data OUT`.  The same
    seed gives the same files; unreadable photos are skipped with a warning; OUT appears only
    when complete.

    \b
    Examples:
      imgtrans data make edges ~/photos/cats cats_edges
      imgtrans data make superres photos/ sr4 --set superres.scale=4 --size 128
      imgtrans data make denoise photos/ noisy --set denoise.sigma=50 --split 0.9,0,0.1
    """
    from ..core.config import parse_set_options
    from ..data.make import make_dataset, parse_split, task_parameters

    params = task_parameters(task, parse_set_options(settings))
    report = make_dataset(task, photos, out, parameters=params, seed=seed, split=parse_split(split_text), size=size,
                          image_format=image_format, workers=workers, overwrite=overwrite)
    counts = ", ".join(f"{report.counts[s]} {s}" for s in ("train", "val", "test") if s in report.counts)
    skipped = f"; skipped {len(report.skipped)} unreadable file(s)" if report.skipped else ""
    click.echo(f"wrote {out}: {counts} pairs ({task}){skipped}")
