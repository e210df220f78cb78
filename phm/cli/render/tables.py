"""Tables on the console (rich), the one way every command prints a table or a list of records.

On a terminal, tables fit its width, folding long values within their cells (never cut with "…"). Anywhere
else (output piped to a file or another program, a CI log, no COLUMNS), a table is printed at its natural width
with its title on a line of its own, so every value stays whole on one line."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from phm.cli.common import console


def table(
    title: str, columns: list[str], rows: list[list[Any]], right: set[str] | None = None, caption: str | None = None
) -> None:
    """Print a table; `right` names the columns aligned right. Every row has one cell per column."""
    if any(len(r) != len(columns) for r in rows):
        raise ValueError(f"table {title!r}: a row does not have one value per column {columns}")
    terminal = console.is_terminal
    # names in titles and cells come from the data (a site called "[/]" or "[link=...]"): shown as written, never markup
    t = Table(title=Text(title) if terminal else None, caption=Text(caption) if terminal and caption else None)
    for col in columns:
        t.add_column(col, justify="right" if right and col in right else "left", overflow="fold")
    for r in rows:
        t.add_row(*(Text("" if v is None else str(v)) for v in r))
    if terminal:
        console.print(t)
        return
    width = console.measure(t, options=console.options.update_width(1_000_000)).maximum
    console.print(title, highlight=False, markup=False)
    terminal_width, console.width = console.width, max(width, 1)
    try:
        console.print(t)
    finally:
        console.width = terminal_width
    if caption:
        console.print(caption, highlight=False, markup=False)


def dicts(title: str, rows: list[dict], limit: int = 30) -> None:
    """A list of records as a table (the first `limit`; a caption says how many more were saved)."""
    if not rows:
        console.print(f"{title}: none")
        return
    names = list(dict.fromkeys(k for r in rows for k in r))  # every column any row has, in first-seen order

    def cell(v: Any) -> str:
        return "" if v is None else f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)

    cells = [[cell(r.get(k)) for k in names] for r in rows[:limit]]
    caption = f"{len(rows) - limit} more rows in the saved report" if len(rows) > limit else None
    table(title, [str(k) for k in names], cells, caption=caption)
