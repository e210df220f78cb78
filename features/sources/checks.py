"""Data contracts compiled to SQL: each column's text and typed expressions, and the conditions under which a
row breaks a rule (its quarantine reason). Values and names in the SQL are always escaped literals (`lit`)
or quoted identifiers (`q`); numbers and NHS numbers in text are parsed strictly."""

from __future__ import annotations

from datetime import date

from features.sources.contracts import RULES, Column, TableContract
from phm.core.sql import identifier, literal

SQL_TYPES = {"string": "VARCHAR", "integer": "BIGINT", "float": "DOUBLE", "date": "DATE", "timestamp": "TIMESTAMP"}


# Text that is a number, strictly: DuckDB's casts also read hex (0x1F), binary (0b1), digit separators (1_000)
# and round 3.5 to 4 for integers; none of those is a plausible value in an extract.
INTEGER_TEXT = r"[+-]?[0-9]+(\.0*)?"
FLOAT_TEXT = r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?"
REPEATED = ", ".join(f"'{d * 10}'" for d in "0123456789")  # 0000000000 ... 9999999999 pass the check digit


q = identifier
lit = literal


def nhs_key(raw_text: str) -> str:
    """The NHS number as BIGINT when its text is ten ASCII digits and not one digit ten times, else NULL (the
    check digit is tested once per distinct number by the loader)."""
    return (
        f"CASE WHEN length({raw_text}) = 10 AND ltrim({raw_text}, '0123456789') = '' "
        f"AND {raw_text} NOT IN ({REPEATED}) THEN CAST({raw_text} AS BIGINT) END"
    )


# File types read natively for each contract type: every value converts exactly. Any other type (a double or
# decimal in an integer column, a boolean, an integer in a date column) is read as text like a CSV value, so 3.5 is
# `wrong_type` rather than 4, and NaN or 1e30 quarantines its row rather than failing the load.
_INTEGERS = frozenset({"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER"})
_TIMES = frozenset({"DATE", "TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "TIMESTAMP WITH TIME ZONE"})
NATIVE = {"integer": _INTEGERS, "float": _INTEGERS, "date": _TIMES, "timestamp": _TIMES}


def typed(col: Column, source: str | None, source_type: str | None = None) -> tuple[str | None, str]:
    """(raw text expression or None, typed expression) for a column whose file type is `source_type` (DuckDB's).

    A column whose file already stores a type that converts exactly (`NATIVE`: Parquet dates, integers) is not
    turned into text row by row: its text form is derived only where a check or the quarantine record needs it.
    """
    if source is None:
        return "NULL::VARCHAR", f"NULL::{SQL_TYPES[col.type]}"
    if source_type in NATIVE.get(col.type, ()) and not col.nhs_number:
        return None, f"CAST({q(source)} AS {SQL_TYPES[col.type]})"
    text = f"NULLIF(TRIM(CAST({q(source)} AS VARCHAR)), '')"
    if col.nhs_number:
        text = f"replace(replace({text}, ' ', ''), '-', '')"  # '943 476 5919' is common
    if col.strip:
        text = f"replace({text}, {lit(col.strip)}, '')"
    if col.type == "string":
        return text, text
    if col.type in ("date", "timestamp"):
        return text, f"TRY_CAST({text} AS {SQL_TYPES[col.type]})"
    pattern = INTEGER_TEXT if col.type == "integer" else FLOAT_TEXT
    return (
        text,
        f"CASE WHEN regexp_full_match({text}, {lit(pattern)}) THEN TRY_CAST({text} AS {SQL_TYPES[col.type]}) END",
    )


def checks(
    contract: TableContract, cols: dict[str, str | None], text: dict[str, str], as_of: date
) -> list[tuple[str, str, str]]:
    """(rule, column, SQL condition that is true when the row breaks it), in rule order."""
    out: list[tuple[str, str, str]] = []
    by_rule: dict[str, list[tuple[str, str, str]]] = {r: [] for r in RULES}
    for col in contract.columns:
        if cols[col.name] is None:
            continue
        t, v = text[col.name], f"v_{col.name}"
        if col.required:
            by_rule["missing_value"].append((col.name, col.name, f"{v if not t.startswith('t_') else t} IS NULL"))
        if col.type != "string" and t.startswith("t_"):
            by_rule["wrong_type"].append((col.name, col.name, f"{t} IS NOT NULL AND {v} IS NULL"))
        if col.codes is not None:
            allowed = ", ".join(lit(c) for c in col.codes)
            by_rule["unknown_code"].append((col.name, col.name, f"{t} IS NOT NULL AND {t} NOT IN ({allowed})"))
        if col.pattern is not None:
            by_rule["unknown_code"].append(
                (col.name, col.name, f"{t} IS NOT NULL AND NOT regexp_full_match({t}, {lit(col.pattern.strip('^$'))})")
            )
        if col.min is not None:
            by_rule["out_of_range"].append((col.name, col.name, f"{v} < {col.min}"))
        if col.max is not None:
            by_rule["out_of_range"].append((col.name, col.name, f"{v} > {col.max}"))
        if col.type in ("date", "timestamp"):
            by_rule["future_date"].append((col.name, col.name, f"CAST({v} AS DATE) > DATE {lit(as_of.isoformat())}"))
            by_rule["date_out_of_range"].append((col.name, col.name, f"CAST({v} AS DATE) < DATE '1900-01-01'"))
        if col.references is not None:
            ref_table, ref_col = col.references
            by_rule["unknown_reference"].append(
                (
                    col.name,
                    col.name,
                    f"""{t} IS NOT NULL AND {t} NOT IN
                (SELECT {q(ref_col)} FROM {q(ref_table)})""",
                )
            )
    for start, end in contract.order:
        if cols[start] and cols[end]:
            by_rule["end_before_start"].append((end, end, f"v_{end} < v_{start}"))
    if contract.name == "patients":
        by_rule["before_birth"].append(
            (
                "registration_start",
                "registration_start",
                "v_month_of_birth BETWEEN 1 AND 12 AND v_year_of_birth BETWEEN 1890 AND 2100 AND "
                "v_registration_start < make_date(v_year_of_birth, v_month_of_birth, 1)",
            )
        )
    for rule in RULES:
        out += [(rule, column, cond) for column, _c, cond in by_rule[rule]]
    return out
