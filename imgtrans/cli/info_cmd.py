"""``imgtrans info KIND NAME``: what a component is, where it comes from, and what can be set on it."""
from __future__ import annotations

import json
from typing import Any

import click

from .listing import KindType


@click.command("info")
@click.argument("kind", type=KindType())
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON (same as imgtrans.describe).")
def info_command(kind: str, name: str, as_json: bool) -> None:
    """Describe component NAME of KIND: description, plugin, distribution, and every argument.

    Arguments are shown with their type, default and help (from the component's docstring);
    a recipe also shows its component slots, the networks it builds itself, its `imgtrans train` options and
    section defaults.  Set arguments with
    `--set SLOT.ARG=VALUE` (recipe hyper-parameters: `--set recipe.ARG=VALUE`).

    \b
    Examples:
      imgtrans info generator unet_256
      imgtrans info recipe pix2pix --json
      imgtrans info dataset basemap
    """
    from ..core.introspect import describe

    data = describe(kind, name)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    render(data)


def render(data: dict[str, Any]) -> None:
    """Tables that fit an 80-column terminal: long cells wrap, none is cut; plain text in a pipe."""
    from rich.markup import escape
    from rich.table import Table

    from ..util.terminal import rich_console
    from .tables import name_table, print_table

    console = rich_console()
    console.soft_wrap = not console.is_terminal  # in a pipe: one line per paragraph, never cut
    origin = f"plugin {data['plugin']}"
    if data.get("distribution"):
        origin += f", distribution {data['distribution']} {data.get('version') or ''}".rstrip()
    console.print(f"[bold]{data['kind'].replace('_', ' ')} {escape(data['name'])}[/bold]  ({escape(origin)})")
    if data.get("description"):
        console.print(escape(data["description"]))
    if data["kind"] == "dataset":
        table = Table("field", "value", show_header=False)
        for key in ("paired", "domains", "layout", "how", "url", "splits", "licence", "notes", "size_mb"):
            if data.get(key) not in (None, "", {}, []):
                table.add_row(key, escape(str(data[key])))
        print_table(table)
        return
    if data["kind"] == "metric":
        shape = {"paired": "per image, against each output's target",
                 "set": "over the whole set, against reference images"}
        console.print(escape(f"scored {shape.get(data.get('shape'), '?')}; {data.get('better')} is better"))
    if data.get("slots"):
        console.print("component slots (--set SLOT.name=NAME)")
        roles = any(s["role"] for s in data["slots"])
        slots = Table("slot", "kind", "default", *(["role"] if roles else []))
        for s in data["slots"]:
            slots.add_row(s["name"], s["kind"] or "", s["default"] or "", *([s["role"] or ""] if roles else []))
        print_table(slots)
    if data.get("owned_networks"):
        console.print("networks the recipe builds itself (checkpointed like the slots'; --init NAME=SOURCE)")
        owned = Table("network", "description")
        for n in data["owned_networks"]:
            owned.add_row(n["name"], escape(n["description"]))
        print_table(owned)
    if data.get("options"):
        console.print(f"options of `imgtrans train {data['name']}`")
        options = Table("option", "type", "sets", "help")
        for o in data["options"]:
            options.add_row(o["flag"], escape(o["type"]), escape(", ".join(o["keys"])), escape(o["help"]))
        print_table(options)
    heading = "hyper-parameters (--set recipe.ARG=VALUE)" if data["kind"] == "recipe" else "arguments"
    if not data["arguments"]:
        console.print(f"{heading}: none")
    else:
        console.print(heading)
        with_help = any(a["help"] for a in data["arguments"])
        rows = [[a["name"], escape(a["type"]), escape("required" if a["required"] else json.dumps(a["default"])),
                 *([escape(a["help"])] if with_help else [])] for a in data["arguments"]]
        print_table(name_table(["name", "type", "default", *(["help"] if with_help else [])], rows))
    for section in ("data", "optim"):
        if data.get(f"{section}_defaults"):
            console.print(escape(f"[{section}] defaults: {json.dumps(data[f'{section}_defaults'])}"))
