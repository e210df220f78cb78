"""An extract file exposed to DuckDB as the temp view `raw` (Parquet natively, CSV as text) with a 1-based `_row`;
its columns resolved against the contract (aliases, any case) and each row's provenance (the source file and
row a format mapping recorded, else this file and row)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features.sources.checks import lit as _lit
from features.sources.checks import q as _q
from features.sources.contracts import TableContract
from features.sources.extracts import ContractError
from features.sources.formats.common import SOURCE_FILE, SOURCE_ROW
from features.sources.load_report import TableReport
from features.sources.readable import check_parquet, csv_error, utf16


def read_raw(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Expose the raw file as view `raw` with a 1-based `_row` in file order (no copy)."""
    if path.suffix == ".parquet":
        try:
            check_parquet(path)
        except ValueError as exc:
            raise ContractError(str(exc)) from exc
        _unique_names(path, pq.read_schema(path).names)
        con.execute(f"""CREATE OR REPLACE TEMP VIEW raw AS
                        SELECT * EXCLUDE (file_row_number), file_row_number + 1 AS _row
                        FROM read_parquet({_lit(str(path))}, file_row_number = true)""")
    else:
        if problem := utf16(path):
            raise ContractError(problem)
        try:
            names = pacsv.read_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 16)).schema.names
            table = pacsv.read_csv(
                path,
                convert_options=pacsv.ConvertOptions(
                    column_types={n: pa.string() for n in names}, strings_can_be_null=True
                ),
            )
        except (pa.ArrowInvalid, OSError) as exc:
            raise ContractError(csv_error(path, exc)) from exc
        _unique_names(path, names)
        table = table.append_column("_row", pa.array(range(1, table.num_rows + 1), pa.int64()))
        con.register("raw", table)


def _unique_names(path: Path, names: list[str]) -> None:
    """A header naming one column twice (in any case) is ambiguous: which holds the values is not guessed."""
    seen: dict[str, int] = {}
    for i, name in enumerate(names, 1):
        if name.lower() in seen:
            raise ContractError(
                f"{path}: the header names column '{name}' twice (columns {seen[name.lower()]} and {i}); "
                "keep one and load again"
            )
        seen[name.lower()] = i


def resolve_columns(
    con: duckdb.DuckDBPyConnection, contract: TableContract, path: Path, rep: TableReport
) -> dict[str, str | None]:
    """Each contract column's source column in `raw` (names and aliases, any case); missing optional columns and
    ignored source columns are noted in `rep`; a missing required column is a ContractError."""
    present = [
        r[0]
        for r in con.execute("SELECT column_name FROM (DESCRIBE raw)").fetchall()
        if r[0] not in ("_row", SOURCE_FILE, SOURCE_ROW)
    ]
    lower = {p.lower(): p for p in present}
    found: dict[str, str | None] = {}
    for col in contract.columns:
        matches = [lower[n] for n in dict.fromkeys(a.lower() for a in [col.name, *col.aliases]) if n in lower]
        if len(matches) > 1:
            raise ContractError(
                f"{path}: columns {' and '.join(repr(m) for m in matches)} both give the {contract.name} contract's "
                f"'{col.name}'; keep one and load again"
            )
        source = matches[0] if matches else None
        if source is None and col.required:
            raise ContractError(
                f"{path}: missing column '{col.name}' required by the {contract.name} contract"
                + (f" (also accepted: {', '.join(col.aliases)})" if col.aliases else "")
            )
        if source is None:
            rep.missing_optional_columns.append(col.name)
        found[col.name] = source
    used = {s for s in found.values() if s}
    rep.ignored_columns = [p for p in present if p not in used]
    return found


def provenance(path: Path, types: dict[str, str]) -> list[str]:
    """Where each row came from: the source file and row a format mapping recorded, else this file and row."""
    if SOURCE_FILE in types and SOURCE_ROW in types:
        return [
            f"coalesce(CAST({_q(SOURCE_FILE)} AS VARCHAR), {_lit(path.name)}) AS _src_file",
            f"coalesce(TRY_CAST({_q(SOURCE_ROW)} AS BIGINT), _row) AS _src_row",
        ]
    return [f"{_lit(path.name)} AS _src_file", "_row AS _src_row"]


def drop_raw(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute("DROP VIEW IF EXISTS raw")
    except duckdb.CatalogException:
        con.unregister("raw")
