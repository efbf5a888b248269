"""Tables whose names are never cut short, drawn for a terminal and plain for a pipe.

Names are what users copy into the next command, so a name column is as wide as its longest
name and never wraps or ends in an ellipsis, even in an 80-column terminal; every other column
wraps onto more lines instead of being truncated (and when the names alone leave too little room,
the table is printed as plain text, which the terminal wraps).  When stdout is not a terminal (a pipe, a
file) the same rows are printed as plain aligned text, one line per row, with no box drawing or
colour, so ``grep``, ``awk '{print $1}'`` and ``less`` see whole rows; ``--json`` is there for
anything more.  Rich's ``TTY_COMPATIBLE=1`` / ``FORCE_COLOR`` force the drawn table.
"""
from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any


def name_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, names: Collection[str] = ("name",),
               **kwargs: Any) -> Any:
    """A ``rich.table.Table`` of ``rows`` whose ``names`` columns are never truncated (cells may
    hold Rich markup; escape user text first)."""
    from rich.table import Table
    from rich.text import Text

    rows = [list(r) for r in rows]
    table = Table(**kwargs)
    for i, header in enumerate(headers):
        if header in names:
            cells = [Text.from_markup(str(r[i])).cell_len for r in rows if isinstance(r[i], str)]
            table.add_column(header, no_wrap=True, min_width=max([len(header), *cells]))
        else:
            table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def print_table(table: Any, *, optional: Sequence[str] = ()) -> None:
    """Print ``table`` on stdout: drawn at the terminal's width (``COLUMNS`` still sets it), or as
    plain aligned text when stdout is not a terminal.  In a terminal too narrow for every column,
    the ``optional`` columns (header names, least useful first) are left out, as the caption says,
    so that an 80-column terminal gets a drawn table with whole names; ``--json`` has everything."""
    from rich.console import Console

    console = Console()
    if console.is_terminal:
        dropped = []
        for header in optional:
            if _fits(table, console.width):
                break
            index = next((i for i, c in enumerate(table.columns) if c.header == header), None)
            if index is not None:
                del table.columns[index]
                dropped.append(header)
        if _fits(table, console.width):
            if dropped:
                table.caption = f"not shown at this width: {', '.join(dropped)} (see --json)"
            console.print(table)
            return
    import click

    for line in plain_lines(table):
        click.echo(line)


def _fits(table: Any, width: int) -> bool:
    """Whether the whole names and a few characters of every other column fit ``width`` (else Rich
    would have to cut a name, and the plain layout, which the terminal wraps, is the readable one)."""
    needed = sum((c.min_width or 0) if c.no_wrap else _MIN_FOLDED for c in table.columns)
    return needed + 3 * len(table.columns) + 1 <= width


_MIN_FOLDED = 8  # narrowest useful width of a column that wraps


def plain_lines(table: Any) -> list[str]:
    """The title, rows and caption of a ``rich.table.Table`` as text: columns two spaces apart,
    markup and trailing blanks dropped, nothing wrapped or cut."""
    columns = [[*([_plain(c.header)] if table.show_header else []), *map(_plain, c.cells)] for c in table.columns]
    if not columns:
        return []
    widths = [max(len(cell) for cell in column) for column in columns]
    lines = [_plain(table.title)] if table.title else []
    for row in zip(*columns):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return lines + ([_plain(table.caption)] if table.caption else [])


def _plain(cell: Any) -> str:
    from rich.text import Text

    if isinstance(cell, Text):
        text = cell.plain
    elif isinstance(cell, str):
        text = Text.from_markup(cell).plain
    else:
        text = str(cell)
    return " ".join(text.split())  # one line per row, whatever the cell held
