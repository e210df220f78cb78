"""A Parquet copy of the warehouse for Spark: one file per linked table, and a stamp naming the warehouse
file it was copied from, so it is refreshed whenever the warehouse is replaced (every `phm data load`).

Quarantined rows and the generator's truth tables stay in the warehouse: feature builds never read them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb

from features.engine.base import remove_output, replace_output
from features.sources.contracts import CONTRACTS
from phm.core.sql import identifier, literal

STAMP = "_export.json"
TABLES = [c.name for c in CONTRACTS] + ["load_info"]


def warehouse_identity(warehouse: Path) -> dict:
    st = warehouse.stat()
    return {"warehouse": str(warehouse.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def export_tables(warehouse: Path, folder: Path) -> list[str]:
    """Write every linked table of the warehouse to `folder/<table>.parquet`; returns the tables written."""
    if not warehouse.exists():
        raise FileNotFoundError(f"{warehouse}: no warehouse yet. Run `phm data load SRC_DIR` (or `phm demo`) first.")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / STAMP).unlink(missing_ok=True)  # a half-refreshed copy is never taken for a complete one
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        con.execute("SET enable_progress_bar = false")
        present = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        written = [t for t in TABLES if t in present]
        for table in written:
            out = folder / f"{table}.parquet"
            tmp = folder / f".{table}.{os.getpid()}.tmp"
            try:
                con.execute(f"COPY {identifier(table)} TO {literal(tmp)} (FORMAT parquet, COMPRESSION zstd)")
                replace_output(tmp, out)
            finally:
                remove_output(tmp)
        for stale in folder.glob("*.parquet"):
            if stale.stem not in written:
                remove_output(stale)
    finally:
        con.close()
    (folder / STAMP).write_text(json.dumps({**warehouse_identity(warehouse), "tables": written}, indent=1))
    return written


def ensure_exported(warehouse: Path, folder: Path) -> bool:
    """Refresh the copy when it is missing or was taken from another version of the warehouse; True if it did."""
    stamp = folder / STAMP
    if stamp.exists() and warehouse.exists():
        recorded = json.loads(stamp.read_text())
        if {k: recorded.get(k) for k in ("warehouse", "size", "mtime_ns")} == warehouse_identity(warehouse):
            return False
    export_tables(warehouse, folder)
    return True
