"""SQL text from values: every path, code or date pasted into a statement goes through `literal` (an escaped
string literal) or `identifier` (a quoted name). Statements that can bind parameters (`?`) do so instead;
these are for the places SQL cannot bind (ATTACH, COPY ... TO, SET, generated feature SQL)."""

from __future__ import annotations

from pathlib import Path


def literal(value: str | Path) -> str:
    """`value` as a SQL string literal: quotes doubled (a PHM_HOME such as /data/o'brien is safe)."""
    text = str(value)
    if "\x00" in text:
        raise ValueError("a NUL character cannot appear in SQL text")
    return "'" + text.replace("'", "''") + "'"


def identifier(name: str) -> str:
    """`name` as a quoted SQL identifier."""
    if "\x00" in name:
        raise ValueError("a NUL character cannot appear in SQL text")
    return '"' + name.replace('"', '""') + '"'
