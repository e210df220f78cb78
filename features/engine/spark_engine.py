"""The Spark engine: the same compiled SQL on a Spark session, for populations beyond one machine.

Linked tables come from a catalog database by name (`spark_database`, e.g. Delta tables on Databricks)
or from a folder of Parquet tables (`spark_tables`; by default a copy of the DuckDB warehouse, refreshed
when the warehouse changes). Temporary tables are cached temporary views; the output is a folder of
Parquet parts written beside its destination and moved into place only once complete.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from features.engine.base import Engine, EngineError, remove_output, replace_output
from features.engine.dialect import SparkDialect
from features.engine.export import ensure_exported
from features.engine.spark_session import spark_session
from phm.core.settings import Settings

VIEW_PREFIX = "phm_src_"


class SparkEngine(Engine):
    name = "spark"

    def __init__(self, settings: Settings, warehouse: Path | None = None, session: Any = None) -> None:
        self.dialect = SparkDialect()
        self.spark = session or spark_session(settings)
        self.database = settings.spark_database
        self._temp: list[str] = []
        if self.database:
            self.location = f"Spark catalog {self.database}"
            self.folder = None
        elif settings.spark_tables:
            self.folder = Path(settings.spark_tables).expanduser()
        else:  # the default: a Parquet copy beside the DuckDB warehouse, refreshed when it changes
            warehouse = warehouse or settings.warehouse_path
            self.folder = warehouse.parent / "tables"
            ensure_exported(warehouse, self.folder)
        if self.folder is not None:
            if not self.folder.is_dir():
                raise EngineError(
                    f"{self.folder}: no folder of Parquet tables for Spark "
                    "(set spark_tables, or spark_database for tables by name)"
                )
            self.location = f"Parquet tables in {self.folder}"
        self._registered: set[str] = set()

    # ---- sources ------------------------------------------------------------------------------------
    def _files(self) -> dict[str, Path]:
        out = {}
        for path in sorted(self.folder.iterdir()):
            if path.name.startswith((".", "_")):
                continue
            stem = path.name.removesuffix(".parquet")
            if path.suffix == ".parquet" or path.is_dir():
                out[stem] = path
        return out

    def table(self, name: str) -> str:
        if self.database:
            return f"{self.database}.{name}"
        view = VIEW_PREFIX + name
        if name not in self._registered:
            path = self._files().get(name)
            if path is None:
                raise EngineError(f"{self.folder}: no Parquet table {name!r}")
            self.spark.read.parquet(str(path)).createOrReplaceTempView(view)
            self._registered.add(name)
        return view

    def columns(self) -> dict[str, set[str]]:
        if self.database:
            names = [r[1] for r in self.spark.sql(f"SHOW TABLES IN {self.database}").collect()]
            return {t: set(self.spark.table(f"{self.database}.{t}").columns) for t in names}
        return {t: set(self.spark.table(self.table(t)).columns) for t in self._files()}

    # ---- statements -----------------------------------------------------------------------------------
    def rows(self, sql: str) -> list[tuple]:
        return [tuple(r) for r in self.spark.sql(sql).collect()]

    def frame(self, sql: str) -> pd.DataFrame:
        return self.spark.sql(sql).toPandas()

    def materialize(self, name: str, sql: str) -> None:
        self.temp_view(name, self.spark.sql(sql), cache=True)
        self.spark.table(name).count()  # computed once, here

    def view(self, name: str, sql: str) -> None:
        self.temp_view(name, self.spark.sql(sql))

    def write_parquet(self, sql: str, order_by: list[str], out: Path) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        remove_output(tmp)
        try:
            self.spark.sql(sql).orderBy(*order_by).write.mode("overwrite").parquet(str(tmp.resolve()))
            replace_output(tmp, out)  # part files in sort order; readers skip _SUCCESS and .crc files
        finally:
            remove_output(tmp)

    def read_parquet(self, name: str, path: Path) -> None:
        self.temp_view(name, self.spark.read.parquet(str(path.resolve())))

    def temp_view(self, name: str, frame: Any, cache: bool = False) -> None:
        """Name a DataFrame for SQL (optionally cached) until the engine closes."""
        self.spark.sql(f"UNCACHE TABLE IF EXISTS {name}")
        frame.createOrReplaceTempView(name)
        if cache:
            self.spark.catalog.cacheTable(name)
        if name not in self._temp:
            self._temp.append(name)

    def close(self) -> None:
        for name in self._temp:
            self.spark.sql(f"UNCACHE TABLE IF EXISTS {name}")
            self.spark.catalog.dropTempView(name)
        self._temp.clear()
        for name in self._registered:
            self.spark.catalog.dropTempView(VIEW_PREFIX + name)
        self._registered.clear()
