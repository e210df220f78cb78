"""Compile feature definitions to SQL and run them on an engine: DuckDB (embedded) or Spark (at scale).

Design note: definitions compile to SQL through a small `Dialect` (date arithmetic, arg-max, literals,
casts), and an `Engine` runs it (source tables, temporary tables, Parquet output). Everything
engine-specific lives in `dialect.py` and the two engine modules, so both engines run the same
definitions and produce the same tables (engine-parity tests pin it). We generate SQL ourselves
rather than use Ibis (which needs pyspark<4.1 and sqlglot<30.18 here) to avoid pinning the stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from features.engine.base import Engine, EngineError
from phm.core.settings import Settings

EngineName = Literal["duckdb", "spark"]


def open_engine(settings: Settings, name: EngineName | None = None, warehouse: Path | None = None) -> Engine:
    """An engine over the linked tables: `name`, else the configured `engine` setting."""
    chosen = name or settings.engine
    if chosen == "duckdb":
        from features.engine.duckdb_engine import DuckDBEngine

        return DuckDBEngine(warehouse or settings.warehouse_path)
    if chosen == "spark":
        from features.engine.spark_engine import SparkEngine

        return SparkEngine(settings, warehouse)
    raise EngineError(f"unknown engine {chosen!r}: choose duckdb or spark")


__all__ = ["Engine", "EngineError", "EngineName", "open_engine"]
