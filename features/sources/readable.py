"""Errors about unreadable extracts that name the file (and row) but never echo its content: a ragged CSV
row or a value in a parser's message may hold an NHS number, which must not reach a terminal or a log."""

from __future__ import annotations

import csv
import gzip
import io
import re
from pathlib import Path

import pyarrow.parquet as pq

from phm.core.logs import redact

_RAGGED = re.compile(r"Expected (\d+) columns, got (\d+)")


def first_line(exc: BaseException) -> str:
    """An exception's message on one line, without anything that looks like an NHS number or row content."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    text = re.sub(r"(got \d+): .*", r"\1", text)  # Arrow appends the offending row after "got N: "
    return redact(text)


def _open_text(path: Path, errors: str = "replace"):
    raw = gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8", errors=errors, newline="")


def utf16(path: Path) -> str | None:
    """The error for a CSV saved as UTF-16 (its byte-order mark), else None."""
    raw = gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")
    with raw:
        head = raw.read(2)
    if head in (b"\xff\xfe", b"\xfe\xff"):
        return f'{path}: saved as UTF-16 text; save it as UTF-8 ("CSV UTF-8") and load again'
    return None


def not_utf8(path: Path) -> tuple[int, str] | None:
    """The first data row (1 = the row after the header) and column holding bytes that are not UTF-8."""
    with _open_text(path, "surrogateescape") as fh:
        header: list[str] = []
        for n, row in enumerate(csv.reader(fh)):
            header = header or row
            bad = next((i for i, field in enumerate(row) if any("\udc80" <= c <= "\udcff" for c in field)), None)
            if bad is not None:
                return n, header[bad] if bad < len(header) and n else f"#{bad + 1}"
    return None


def ragged_row(path: Path, expected: int) -> int | None:
    """The first data row (1 = the row after the header) whose field count differs from the header's."""
    with _open_text(path) as fh:
        for n, row in enumerate(csv.reader(fh)):
            if n and len(row) != expected:
                return n
    return None


def csv_error(path: Path, exc: BaseException) -> str:
    """A one-line message for a CSV the reader refused, naming the file and, for ragged rows, the row."""
    found = _RAGGED.search(str(exc))
    if found:
        expected, got = int(found.group(1)), int(found.group(2))
        row = ragged_row(path, expected)
        where = f"row {row}" if row else "a row"
        return (
            f"{path}: {where} has {got} fields where the header has {expected} (a ragged CSV: a stray delimiter, "
            "an unquoted comma or a cut-off line); fix the extract and load again"
        )
    if "invalid UTF8" in str(exc):
        found = not_utf8(path)
        where = (f"row {found[0]}, column '{found[1]}'" if found[0] else "its header") if found else "a value"
        return (
            f"{path}: {where} is not UTF-8 text (perhaps Latin-1 or Windows-1252); save the extract as UTF-8 "
            '("CSV UTF-8") and load again'
        )
    return f"{path}: cannot be read as CSV ({first_line(exc)})"


def check_parquet(path: Path) -> None:
    """Raise ValueError with a one-line message when `path` is not a complete Parquet file (e.g. truncated)."""
    try:
        pq.read_metadata(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure is the same answer for the user
        raise ValueError(
            f"{path}: not a readable Parquet file, perhaps truncated or corrupt ({first_line(exc)}); export it again"
        ) from exc
