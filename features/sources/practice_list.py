"""A practice's registered list (CSV from the clinical system: NHS number, name, date of birth, other columns kept
for display), read in memory only, for re-identification in direct care. Each NHS number is checked and
pseudonymised with the installation's key here; nothing is written anywhere. Errors name the row or the column,
never a value (they may be shown or logged)."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

from features.sources.nhs_number import is_valid, normalise
from features.sources.pseudonymise import Pseudonymiser

MAX_BYTES = 4_000_000  # a large practice (~30,000 patients at ~100 bytes a row) fits easily
MAX_ROWS = 60_000
MAX_EXTRA_COLUMNS = 12
MAX_CELL = 200
REQUIRED = {
    "nhs_number": ("nhs_number", "nhs_no", "nhs"),
    "name": ("name", "patient_name", "full_name"),
    "date_of_birth": ("date_of_birth", "dob", "birth_date"),
}


class PracticeListError(ValueError):
    """A practice list that cannot be read at all; `status` is the HTTP status to answer (413 or 422)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Entry:
    """One well-formed row: where it was, its number (normalised), name, date of birth and other columns."""

    row: int
    nhs_number: str
    name: str
    date_of_birth: str
    extra: dict[str, str]
    person_id: int = 0


@dataclass
class PracticeList:
    entries: list[Entry]
    extra_columns: list[str]
    rows_read: int
    malformed_rows: list[int] = field(default_factory=list)  # data rows (1 = the first after the header)


def _key(header: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", header.strip().lower()).strip("_")


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PracticeListError(
            f"the practice list is not UTF-8 text: line {line} (file row, header = 1) holds a "
            "byte that is not UTF-8; save it as CSV UTF-8 and upload it again"
        ) from None


def parse(data: bytes) -> PracticeList:
    """Check and read a practice list CSV (see the module docstring). Malformed NHS numbers are listed by row;
    an empty file, missing columns, ragged rows, repeated numbers or too much data raise `PracticeListError`."""
    if len(data) > MAX_BYTES:
        raise PracticeListError(f"the practice list is over {MAX_BYTES:,} bytes; split it by practice", 413)
    text = _decode(data)
    if not text.strip():
        raise PracticeListError("the practice list is empty")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except csv.Error:
        raise PracticeListError("the practice list's header (row 1) is not valid CSV") from None
    keys = [_key(h) for h in header]
    where: dict[str, int] = {}
    for name, aliases in REQUIRED.items():
        hits = [i for i, k in enumerate(keys) if k in aliases]
        if len(hits) > 1:
            raise PracticeListError(
                f"the header names the column {name!r} more than once (columns {[h + 1 for h in hits]})"
            )
        if hits:
            where[name] = hits[0]
    missing = [n for n in REQUIRED if n not in where]
    if missing:
        raise PracticeListError(
            f"the practice list needs the columns {list(REQUIRED)} in its header (row 1); missing: {missing}"
        )
    extra = [i for i in range(len(header)) if i not in where.values() and header[i].strip()]
    if len(extra) > MAX_EXTRA_COLUMNS:
        raise PracticeListError(
            f"the practice list has {len(extra)} other columns; at most {MAX_EXTRA_COLUMNS} are kept "
            "for display: remove the rest"
        )
    extra_names = [header[i].strip()[:60] for i in extra]
    twice = sorted({n for n in extra_names if extra_names.count(n) > 1})
    if twice:  # each is shown under its name: a repeated name would show one column's values under both
        columns = [i + 1 for i in extra if header[i].strip()[:60] in twice]
        raise PracticeListError(
            f"the header names {len(twice)} other column(s) more than once (columns {columns}): rename them"
        )
    out = PracticeList(entries=[], extra_columns=extra_names, rows_read=0)
    first_row: dict[str, int] = {}
    repeats: list[str] = []
    n = 0
    try:
        for n, cells in enumerate(reader, start=1):
            if n > MAX_ROWS:
                raise PracticeListError(f"the practice list has more than {MAX_ROWS:,} rows; split it by practice", 413)
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                raise PracticeListError(
                    f"row {n} has {len(cells)} fields but the header has {len(header)} "
                    "(rows are counted from the first after the header)"
                )
            number = normalise(cells[where["nhs_number"]])
            if not is_valid(number):
                out.malformed_rows.append(n)
                continue
            if number in first_row:
                if len(repeats) < 20:
                    repeats.append(f"row {n} repeats row {first_row[number]}")
                continue
            first_row[number] = n
            out.entries.append(
                Entry(
                    n,
                    number,
                    cells[where["name"]].strip()[:MAX_CELL],
                    cells[where["date_of_birth"]].strip()[:40],
                    {extra_names[j]: cells[i].strip()[:MAX_CELL] for j, i in enumerate(extra)},
                )
            )
    except csv.Error:
        raise PracticeListError(
            f"row {n + 1} is not valid CSV (an unclosed quote or a stray character); rows are "
            "counted from the first after the header"
        ) from None
    out.rows_read = n
    if repeats:
        raise PracticeListError(
            f"the practice list holds an NHS number more than once ({'; '.join(repeats)}; "
            "rows counted from the first after the header): remove the repeats"
        )
    if not out.entries and not out.malformed_rows:
        raise PracticeListError("the practice list has a header but no rows")
    return out


def pseudonymise(found: PracticeList, key: bytes) -> None:
    """Set each entry's person id (HMAC of its number with the installation's key), in memory."""
    pseudo = Pseudonymiser(key)
    for e in found.entries:
        e.person_id = pseudo.person_id(e.nhs_number)
