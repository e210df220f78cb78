"""Source extracts as files: finding a table's extract in a folder, its digest, the error for an extract that
cannot be loaded at all, and where a warehouse's data came from (in words for model cards and bias reports)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb


SOURCE_WORDS = {"synthea": "Synthea export (synthetic patients)", "omop": "OMOP CDM v5.4 extract"}


def source_description(source_format: str | None, synthetic: bool) -> str:
    """Where a warehouse's data came from, in words for model cards and bias reports."""
    if source_format in SOURCE_WORDS:
        return SOURCE_WORDS[source_format]
    return "synthetic ICS" if synthetic else "linked ICS warehouse"


def warehouse_source(con: duckdb.DuckDBPyConnection, schema: str = "main") -> str:
    """`source_description` of an open warehouse (older warehouses lack `source_format`)."""
    try:
        row = con.execute(f"SELECT * FROM {schema}.load_info").fetchdf().iloc[0]
    except (duckdb.Error, IndexError):
        return "linked ICS warehouse"
    return source_description(row.get("source_format"), bool(row.get("synthetic")))


class ContractError(ValueError):
    """An extract cannot be loaded at all (missing or unreadable file, missing column, or a load the shrink guard
    refused); names the file and column, never a value."""


def find_extract(src: Path, name: str) -> Path | None:
    """The extract of table `name` in `src`, or None when there is none; a name that is there but not a file (a
    folder, a link to nothing, a device) is a ContractError, never a table "not supplied"."""
    for suffix in (".parquet", ".csv", ".csv.gz"):
        path = src / f"{name}{suffix}"
        if path.is_symlink() and not path.exists():
            raise ContractError(f"{path}: a symbolic link to a file that does not exist; link the {name} extract")
        if path.exists():
            if not path.is_file():
                raise ContractError(f"{path}: not a file (a folder?); put the {name} extract there")
            return path
    return None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
