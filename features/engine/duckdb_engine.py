"""The embedded engine: the DuckDB warehouse attached read-only (many builds may read it at once)."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pandas as pd

from features.engine.base import Engine, remove_output, replace_output
from features.engine.dialect import DuckDBDialect
from phm.core.sql import literal


class DuckDBEngine(Engine):
    name = "duckdb"

    def __init__(self, warehouse: Path) -> None:
        if not warehouse.exists():
            raise FileNotFoundError(
                f"{warehouse}: no warehouse yet. Run `phm data load SRC_DIR` (or `phm demo`) first."
            )
        self.dialect = DuckDBDialect()
        self.location = str(warehouse)
        self.con = duckdb.connect()
        self.con.execute("SET enable_progress_bar = false")
        # large builds spill beside the warehouse (under PHM_HOME), not into the current directory
        self.con.execute(f"SET temp_directory = {literal(warehouse.parent / 'spill')}")
        self.con.execute(f"ATTACH {literal(warehouse)} AS wh (READ_ONLY)")

    def table(self, name: str) -> str:
        return f"wh.{name}"

    def columns(self) -> dict[str, set[str]]:
        present: dict[str, set[str]] = {}
        for table, column in self.con.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_catalog = 'wh'"
        ).fetchall():
            present.setdefault(table, set()).add(column)
        return present

    def rows(self, sql: str) -> list[tuple]:
        return self.con.execute(sql).fetchall()

    def frame(self, sql: str) -> pd.DataFrame:
        return self.con.execute(sql).df()

    def materialize(self, name: str, sql: str) -> None:
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")

    def view(self, name: str, sql: str) -> None:
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {sql}")

    def write_parquet(self, sql: str, order_by: list[str], out: Path) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        try:
            self.con.execute(
                f"COPY (SELECT * FROM ({sql}) q ORDER BY {', '.join(order_by)}) "
                f"TO {literal(tmp)} (FORMAT parquet, COMPRESSION zstd)"
            )
            replace_output(tmp, out)
        finally:
            remove_output(tmp)

    def read_parquet(self, name: str, path: Path) -> None:
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM read_parquet({literal(path)})")

    def close(self) -> None:
        self.con.close()
