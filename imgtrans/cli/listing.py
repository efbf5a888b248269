"""``imgtrans plugins`` and ``imgtrans list``: what is installed and what it provides."""
from __future__ import annotations

import json

import click

from ..core.registry import KINDS, normalize_kind


class KindType(click.ParamType):
    """A component kind, or ``dataset``; plurals (``generators``) are accepted."""

    name = "KIND"

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from ..util.errors import UnknownNameError

        try:
            return normalize_kind(value, extra=("dataset",))
        except UnknownNameError as exc:
            self.fail(str(exc), param, ctx)


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("--check", is_flag=True,
              help="Also import every component registered by import path (slower: imports torch).")
def plugins_command(as_json: bool, check: bool) -> None:
    """List loaded plugins: name, version, distribution, hooks, and any error.

    A plugin that failed (to import, a misspelt hook, a clash or malformed registration, a
    component's module that does not exist) is shown with its error and none of it is used;
    everything else keeps working.  Components registered by import path are imported when first
    used, so a module that exists but fails to import shows up then, or here with --check.  The exit
    status is 1 when any plugin (or, with --check, any component) failed, so CI catches it.
    Set IMGTRANS_DISABLE_PLUGINS=name1,name2 to switch plugins off.
    """
    from dataclasses import asdict

    from rich.markup import escape

    from ..core.plugin_host import get_host
    from .tables import name_table, print_table

    host = get_host()
    if check:
        host.check_components()
    infos = list(host.plugins.values())
    if as_json:
        click.echo(json.dumps([asdict(i) for i in infos], indent=2))
    else:
        def status(i) -> str:
            if i.error or i.component_errors:
                return "[red]error: " + escape("; ".join(filter(None, [i.error, *i.component_errors])))
            return "[yellow]disabled" if i.disabled else "[green]ok"

        rows = [(escape(i.name), i.version or "", escape(i.distribution or ""), ", ".join(i.hooks), status(i))
                for i in infos]
        print_table(name_table(("plugin", "version", "distribution", "hooks", "status"), rows, names=("plugin",)))
    if any(i.error or i.component_errors for i in infos):
        click.get_current_context().exit(1)


@click.command("list")
@click.argument("kind", required=False, type=KindType())
@click.argument("pattern", required=False, default="*")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def list_command(kind: str | None, pattern: str, as_json: bool) -> None:
    """List registered components, optionally of one KIND and matching a wildcard PATTERN.

    \b
    Examples:
      imgtrans list                      everything
      imgtrans list generator 'unet*'    generators whose name starts with unet
      imgtrans list dataset              named datasets (built or downloadable)

    KIND is one of generator, discriminator, loss, dataset_format, recipe, metric, pair_maker,
    dataset (plurals work).
    """

    from ..core.plugin_host import get_host
    from .tables import name_table, print_table

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
    from rich.markup import escape

    headers = ("kind", "name", "plugin", "description")
    print_table(name_table(headers, [tuple(map(escape, r)) for r in rows], names=("kind", "name")))
