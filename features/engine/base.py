"""What a feature build asks of an engine: source tables by name, a few statements, small results
back, temporary tables, and one Parquet output written so that a failed write leaves nothing behind.

`DuckDBEngine` (the embedded default) and `SparkEngine` implement it; the SQL they run comes from the
same compiler through their `Dialect`, so the two produce the same feature tables.
"""

from __future__ import annotations

import os
import re
import shutil
from abc import ABC, abstractmethod
from pathlib import Path

import pandas as pd

from features.engine.dialect import Dialect


class EngineError(RuntimeError):
    """An engine cannot be used as configured (missing extra, missing tables, ...)."""


class OutputError(EngineError):
    """An output path that cannot be written without destroying something else (a folder of other files)."""


# what a folder of Parquet parts written by Spark holds: parts, the success marker and their checksums (and on
# Databricks the transactional commit protocol's _started_/_committed_ markers)
PARQUET_PART = re.compile(r"\.?(part-[^/]*|_SUCCESS|_started_[^/]*|_committed_[^/]*)(\.crc)?")


class Engine(ABC):
    """An open connection to the linked tables on one engine."""

    name: str
    dialect: Dialect
    location: str  # where the tables are read from, for manifests

    @abstractmethod
    def table(self, name: str) -> str:
        """The SQL reference of a linked table."""

    @abstractmethod
    def columns(self) -> dict[str, set[str]]:
        """Every linked table present, with its columns."""

    @abstractmethod
    def rows(self, sql: str) -> list[tuple]:
        """Run a query and return its (small) result."""

    @abstractmethod
    def frame(self, sql: str) -> pd.DataFrame:
        """Run a query and return its (small) result as a DataFrame."""

    @abstractmethod
    def materialize(self, name: str, sql: str) -> None:
        """Compute a query once into a temporary table `name` that later statements can read."""

    @abstractmethod
    def view(self, name: str, sql: str) -> None:
        """Name a query for later statements, recomputed by each (for results too large to store)."""

    @abstractmethod
    def write_parquet(self, sql: str, order_by: list[str], out: Path) -> None:
        """Write a query's rows, sorted, to Parquet at `out`: in place only once complete."""

    @abstractmethod
    def read_parquet(self, name: str, path: Path) -> None:
        """Make a Parquet output readable as temporary table `name`."""

    def close(self) -> None:
        """Release what the engine holds (temporary tables; the DuckDB connection)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_output(out: Path) -> None:
    """Refuse an output path whose replacement would destroy anything but an earlier output: a folder holding
    other files (a PHM home, the features folder) is never replaced by a feature table."""
    if not out.name:
        raise OutputError(f"{out}: give a file name for the output, not a folder")
    if out.is_dir() and not out.is_symlink():
        other = sorted(p.name for p in out.iterdir() if not PARQUET_PART.fullmatch(p.name))
        if other:
            shown = ", ".join(other[:3]) + (f" and {len(other) - 3:,} more" if len(other) > 3 else "")
            raise OutputError(
                f"{out}: is a folder holding other files ({shown}), not an earlier output; "
                "give a new file name for the output (nothing was written)"
            )


def replace_output(tmp: Path, out: Path) -> None:
    """Move a finished output (a file, or a folder of Parquet parts) to `out`, replacing what was there.
    A folder cannot be renamed over a folder, nor over a file (DuckDB's output, when Spark rebuilds the same
    path), so the old output is moved aside first and removed after; a folder holding anything but Parquet parts
    is refused (`check_output`), never removed."""
    check_output(out)
    was_dir = out.is_dir() and not out.is_symlink()
    if was_dir or (tmp.is_dir() and (out.exists() or out.is_symlink())):
        old = out.with_name(f".{out.name}.{os.getpid()}.old")
        os.replace(out, old)
        os.replace(tmp, out)
        if was_dir:
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()
    else:
        os.replace(tmp, out)


def remove_output(path: Path) -> None:
    """Delete a partial output (file or folder) if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()
