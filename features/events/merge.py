"""Event rows laid over warehouse rows, in a new DuckDB file (the warehouse itself is never rewritten while it is
read): `absorb` (the whole warehouse, as the next full load would hold it) and `slice_for` (only some people's
rows plus the reference tables: the input of an incremental refresh). An encounter in the events replaces the
warehouse row with the same key; a cancelled one is removed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb
import pandas as pd

from features.events.fold import KEYS


def _merge(con: duckdb.DuckDBPyConnection, rows: dict[str, pd.DataFrame], people: set[int] | None = None) -> None:
    for table, key in KEYS.items():
        new, gone = rows[table], rows[f"{table}_removed"]
        if people is not None:
            new, gone = new[new.person_id.isin(people)], gone[gone.person_id.isin(people)]
        drop = pd.DataFrame({key: pd.concat([new[key], gone[key]], ignore_index=True).astype(str)})
        con.register("_drop", drop)
        con.execute(f"DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM _drop)")
        con.unregister("_drop")
        if len(new):
            columns = [c for (c,) in con.execute(f"SELECT column_name FROM (DESCRIBE {table})").fetchall()]
            con.register("_new", new)
            con.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM _new")
            con.unregister("_new")


def absorb(warehouse: Path, rows: dict[str, pd.DataFrame], out: Path) -> Path:
    """A copy of `warehouse` at `out` (which may be `warehouse` itself) with the events' rows laid over it."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.copy(warehouse, tmp)
    con = duckdb.connect(str(tmp))
    try:
        _merge(con, rows)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    tmp.replace(out)  # one rename: a reader opens the old file or the new one, never a half-written one
    return out


def not_read_by_features(table: str) -> bool:
    """The loader's ground truth (`truth_*`, synthetic data only) and its quarantine: no feature definition reads
    them, so an incremental refresh's slice holds them empty (same columns) instead of scanning them."""
    return table.startswith("truth_") or table == "quarantine"


def slice_for(warehouse: Path, people: set[int], rows: dict[str, pd.DataFrame], out: Path) -> Path:
    """A small warehouse at `out`: every table without a person (practices, sites, load facts...) whole, the
    person tables only for `people` (in the warehouse's row order; `not_read_by_features` ones empty), with the
    events' rows laid over them."""
    out.unlink(missing_ok=True)
    con = duckdb.connect(str(out))
    try:
        con.execute(f"ATTACH '{warehouse}' AS wh (READ_ONLY)")
        con.register("_people", pd.DataFrame({"person_id": sorted(people)}, dtype="int64"))
        tables = con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'wh' AND schema_name = 'main'"
        ).fetchall()
        for (table,) in tables:
            has_person = con.execute(
                "SELECT count(*) FROM duckdb_columns() WHERE database_name = 'wh' AND "
                "table_name = ? AND column_name = 'person_id'",
                [table],
            ).fetchone()[0]
            if not has_person:
                con.execute(f'CREATE TABLE "{table}" AS SELECT * FROM wh."{table}"')
            elif not_read_by_features(table):
                con.execute(f'CREATE TABLE "{table}" AS SELECT * FROM wh."{table}" LIMIT 0')
            else:  # an inner join lets DuckDB filter the scan by the people's ids; rowid keeps the warehouse's order
                con.execute(
                    f'CREATE TABLE "{table}" AS SELECT w.* FROM wh."{table}" w '
                    "JOIN _people p ON w.person_id = p.person_id ORDER BY w.rowid"
                )
        con.execute("DETACH wh")
        _merge(con, rows, people)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return out
