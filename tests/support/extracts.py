"""Loader test helpers: a read-only connection to a loaded warehouse, and a copy of an extract folder with one
table changed (a column dropped, or written as CSV)."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from phm.core.settings import Settings


def connect(settings: Settings) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the warehouse `settings` loaded."""
    return duckdb.connect(str(settings.warehouse_path), read_only=True)


def copy_with(ics, tmp_path: Path, table: str, drop: str | None = None, csv: bool = False) -> Path:
    """A copy of the extract folder of `ics` under `tmp_path/src` with `table` lacking column `drop` and/or as CSV."""
    src = tmp_path / "src"
    shutil.copytree(ics.out_dir, src)
    t = pq.read_table(src / f"{table}.parquet")
    if drop:
        t = t.drop_columns([drop])
    (src / f"{table}.parquet").unlink()
    if csv:
        pacsv.write_csv(t, src / f"{table}.csv")
    else:
        pq.write_table(t, src / f"{table}.parquet")
    return src
