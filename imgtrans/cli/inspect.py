"""``imgtrans plugins`` and ``imgtrans list``: what is installed and what it provides."""
from __future__ import annotations

import json

import click

from ..registry import KINDS


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def plugins_command(as_json: bool) -> None:
    """List loaded plugins: name, version, distribution, hooks, and any error.

    A plugin that failed to import is shown with its error; everything else keeps working.
    Set IMGTRANS_DISABLE_PLUGINS=name1,name2 to switch plugins off.
    """
    from dataclasses import asdict

    from rich.console import Console
    from rich.table import Table

    from ..plugins import get_host

    infos = list(get_host().plugins.values())
    if as_json:
        click.echo(json.dumps([asdict(i) for i in infos], indent=2))
        return
    table = Table("plugin", "version", "distribution", "hooks", "status")
    for i in infos:
        status = "[red]error: " + i.error if i.error else ("[yellow]disabled" if i.disabled else "[green]ok")
        table.add_row(i.name, i.version or "", i.distribution or "", ", ".join(i.hooks), status)
    Console().print(table)


@click.command("list")
@click.argument("kind", required=False, type=click.Choice(KINDS + ("dataset",)))
@click.argument("pattern", required=False, default="*")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def list_command(kind: str | None, pattern: str, as_json: bool) -> None:
    """List registered components, optionally of one KIND and matching a wildcard PATTERN.

    \b
    Examples:
      imgtrans list                      everything
      imgtrans list generator 'unet*'    generators whose name starts with unet
      imgtrans list dataset              named datasets (built or downloadable)
    """
    from rich.console import Console
    from rich.table import Table

    from ..plugins import get_host

    host = get_host()
    rows = []
    for k in [kind] if kind else [*KINDS, "dataset"]:
        if k == "dataset":
            import fnmatch

            rows += [("dataset", e.name, e.plugin, e.description)
                     for e in (host.catalog.get(n) for n in host.catalog.names()) if fnmatch.fnmatchcase(e.name, pattern)]
        else:
            rows += [(c.kind, c.name, c.plugin, c.description) for c in host.registry.components(k, pattern)]
    if as_json:
        click.echo(json.dumps([dict(zip(("kind", "name", "plugin", "description"), r)) for r in rows], indent=2))
        return
    table = Table("kind", "name", "plugin", "description")
    for r in rows:
        table.add_row(*r)
    Console().print(table)
