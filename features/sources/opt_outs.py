"""Type 1 objections (opt-outs): the optional `opt_outs` extract lists NHS numbers whose people must not be used
for purposes beyond their direct care. The loader pseudonymises them into a temp table `opted_out` and removes
those people's rows before anything is written; the load report only counts them (never lists a number)."""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import pyarrow as pa

from features.sources.checks import q as _q
from features.sources.nhs_number import is_valid, normalise
from features.sources.pseudonymise import Pseudonymiser

log = logging.getLogger("phm.load")
OPT_OUTS = "opt_outs"  # the extract's name (opt_outs.csv or opt_outs.parquet)
COLUMNS = ("nhs_number", "NHS_NUMBER", "NHSNO", "nhs_no", "NHS Number")
NOT_OPTED_OUT = "person_id NOT IN (SELECT person_id FROM opted_out)"


class OptOutError(ValueError):
    """The opt-outs extract cannot be used (no NHS-number column)."""


def register(con: duckdb.DuckDBPyConnection, path: Path, pseudo: Pseudonymiser) -> dict:
    """Temp table `opted_out` (person_id) from the extract exposed as view `raw` (with `_row`); counts of what it
    held and the rows (1-based, in file order) of malformed numbers, which cannot be matched to anyone."""
    present = {r[0].lower(): r[0] for r in con.execute("SELECT column_name FROM (DESCRIBE raw)").fetchall()}
    column = next((present[a.lower()] for a in COLUMNS if a.lower() in present), None)
    if column is None:
        raise OptOutError(
            f"{path}: missing column 'nhs_number' of the opt_outs extract (also accepted: {', '.join(COLUMNS[1:])})"
        )
    values = con.execute(f"SELECT CAST({_q(column)} AS VARCHAR), _row FROM raw ORDER BY _row").fetchall()
    ids, bad = set(), []
    for text, row in values:
        number = normalise(text or "")
        if is_valid(number):
            ids.add(pseudo.person_id(number))
        else:
            bad.append(int(row))
    con.register("opt_out_ids", pa.table({"person_id": pa.array(sorted(ids), pa.int64())}))
    con.execute("CREATE OR REPLACE TEMP TABLE opted_out AS SELECT DISTINCT person_id FROM opt_out_ids")
    con.unregister("opt_out_ids")
    log.info("opt-outs: %d people listed, %d rows with a malformed NHS number", len(ids), len(bad))
    return {
        "file": path.name,
        "rows_read": len(values),
        "people_listed": len(ids),
        "malformed_rows": len(bad),
        "malformed_row_numbers": bad[:100],
    }


def remove(con: duckdb.DuckDBPyConnection, table: str) -> tuple[int, int]:
    """Delete the opted-out people's rows from the temp table `table`; (rows, distinct people) removed."""
    where = f"NOT ({NOT_OPTED_OUT})"
    rows, people = con.execute(f"SELECT count(*), count(DISTINCT person_id) FROM {table} WHERE {where}").fetchone()
    con.execute(f"DELETE FROM {table} WHERE {where}")
    return int(rows), int(people)
