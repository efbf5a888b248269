"""Rich tables whose names are never cut short.

Names are what users copy into the next command, so a name column is as wide as its longest
name and never wraps or ends in an ellipsis, even in an 80-column terminal or a pipe (where Rich
assumes 80 columns); every other column folds onto more lines instead of being truncated.
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


def print_table(table: Any) -> None:
    """Print ``table`` on stdout: at the terminal's width, or, in a pipe or a file (where Rich
    would assume 80 columns), at the table's natural width, one line per row, so that grep and
    cut see whole rows.  ``COLUMNS`` still sets the width when given."""
    import os

    from rich.console import Console
    from rich.measure import Measurement

    console = Console()
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        natural = Measurement.get(console, console.options.update(width=10_000), table).maximum
        console = Console(width=max(natural, 80))
    console.print(table)
