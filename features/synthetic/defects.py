"""Inject malformed rows into extracts, recording exactly what was broken and where.

Each injected row breaks one rule with the same name the loader uses for its quarantine reason,
so tests can prove every defect is caught with the right reason and no valid row is lost.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.sources.nhs_number import corrupt_check_digit

FUTURE = "2031-06-15"

# table -> [(rule, column, bad value or None for a rule-specific corruption)]
TABLE_DEFECTS: dict[str, list[tuple[str, str, str | None]]] = {
    "patients": [
        ("invalid_nhs_number", "nhs_number", None),
        ("unknown_code", "ethnic_category", "Q"),
        ("unknown_code", "sex", "X"),
        ("unknown_reference", "practice_code", "X99999"),
        ("future_date", "registration_start", FUTURE),
        ("end_before_start", "registration_end", None),
        ("wrong_type", "year_of_birth", "19x4"),
        ("missing_value", "registration_start", None),
        ("duplicate_key", "nhs_number", None),
    ],
    "apc_spells": [
        ("invalid_nhs_number", "nhs_number", None),
        ("future_date", "admission_date", FUTURE),
        ("end_before_start", "discharge_date", None),
        ("unknown_code", "admission_method", "99"),
        ("unknown_code", "primary_diagnosis", "ZZ99Z"),
        ("unknown_reference", "site_code", "RZZ99"),
        ("wrong_type", "critical_care_days", "two"),
        ("wrong_type", "admission_date", "31/02/2021"),
        ("missing_value", "admission_method", None),
        ("duplicate_key", "spell_id", None),
    ],
    "ae_attendances": [
        ("invalid_nhs_number", "nhs_number", None),
        ("future_date", "arrival_time", FUTURE + " 10:00:00"),
        ("end_before_start", "departure_time", None),
        ("unknown_code", "acuity", "9"),
        ("wrong_type", "arrival_time", "yesterday"),
        ("duplicate_key", "attendance_id", None),
    ],
    "gp_events": [
        ("invalid_nhs_number", "nhs_number", None),
        ("future_date", "event_date", FUTURE),
        ("unknown_code", "code", "NOT-A-CODE"),
        ("wrong_type", "value", "high"),
        ("duplicate_key", "event_id", None),
    ],
    "prescriptions": [
        ("invalid_nhs_number", "nhs_number", None),
        ("future_date", "issue_date", FUTURE),
        ("unknown_code", "bnf_code", "??"),
        ("duplicate_key", "prescription_id", None),
    ],
    "op_appointments": [
        ("invalid_nhs_number", "nhs_number", None),
        ("unknown_code", "attendance_status", "MAYBE"),
        ("unknown_code", "specialty", "999"),
        ("wrong_type", "appointment_date", "2021-13-45"),
    ],
    "community_contacts": [("invalid_nhs_number", "nhs_number", None), ("future_date", "contact_date", FUTURE)],
    "mh_contacts": [("invalid_nhs_number", "nhs_number", None), ("missing_value", "contact_date", None)],
    "social_care": [
        ("invalid_nhs_number", "nhs_number", None),
        ("end_before_start", "end_date", None),
        ("unknown_code", "service_type", "space_travel"),
    ],
    "housing": [("invalid_nhs_number", "nhs_number", None), ("unknown_code", "flag", "castle")],
    "home_monitoring": [
        ("invalid_nhs_number", "nhs_number", None),
        ("wrong_type", "spo2", "ninety"),
        ("out_of_range", "spo2", "180"),
        ("future_date", "reading_date", FUTURE),
    ],
}
# the column an end_before_start defect is measured against
START_OF = {
    "registration_end": "registration_start",
    "discharge_date": "admission_date",
    "departure_time": "arrival_time",
    "end_date": "start_date",
}


def inject(name: str, table: pa.Table, share: float, rng: np.random.Generator) -> tuple[pa.Table, list[dict]]:
    """Corrupt about `share` of the rows of `table`; return the new table and what was done.

    Columns that receive text in a typed column are written as text, as a CSV-born extract would.
    Row numbers in the record are 1-based positions in the written file.
    """
    specs = TABLE_DEFECTS.get(name, [])
    n = table.num_rows
    k = int(round(n * share))
    if not specs or k == 0:
        return table, []
    rows = rng.choice(n, size=min(k, n), replace=False)
    kinds = rows % len(specs)
    cols = {c: table.column(c).combine_chunks() for c in table.column_names}
    as_text = {column for _rule, column, bad in specs if bad is not None}
    for c in as_text:
        cols[c] = pc.cast(cols[c], pa.string())
    values = {c: cols[c].to_pylist() for c in {s[1] for s in specs} | set(START_OF.values()) if c in cols}
    record: list[dict] = []
    duplicates: list[int] = []
    for row, kind in zip(rows.tolist(), kinds.tolist()):
        rule, column, bad = specs[kind]
        if rule == "invalid_nhs_number":
            values[column][row] = str(corrupt_check_digit(np.array([values[column][row]]))[0])
        elif rule == "end_before_start":
            start = values[START_OF[column]][row]
            if start is None:
                continue
            values[column][row] = _days_before(start, 3, cols[column].type)
        elif rule == "missing_value":
            values[column][row] = None
        elif rule == "duplicate_key":
            duplicates.append(row)
            continue
        else:
            values[column][row] = bad
        record.append({"table": name, "row_number": row + 1, "rule": rule, "column": column})
    for c, v in values.items():
        cols[c] = pa.array(v, type=cols[c].type)
    out = pa.table(cols)
    if duplicates:
        out = pa.concat_tables([out, out.take(sorted(duplicates))])
        record += [
            {"table": name, "row_number": n + i + 1, "rule": "duplicate_key", "column": specs_col(specs)}
            for i in range(len(duplicates))
        ]
    return out, record


def specs_col(specs: list[tuple[str, str, str | None]]) -> str:
    return next(c for r, c, _ in specs if r == "duplicate_key")


def _days_before(start: object, days: int, target: pa.DataType) -> object:
    """A value `days` before `start`, in the target column's type (text or date/time)."""
    if isinstance(start, str):
        start = dt.datetime.fromisoformat(start) if len(start) > 10 else dt.date.fromisoformat(start)
    value = start - dt.timedelta(days=days)
    if pa.types.is_string(target):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    return value
