"""A feature build's output path: a folder holding other files (a PHM home, its features folder) is refused before
any work and left exactly as it was; an earlier output (a file, or Spark's folder of Parquet parts) is replaced."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from support.engines import ENGINES, run
from support.feature_tables import IDX, spec_rows, tiny_warehouse

from models import specs

from features.engine.base import OutputError, replace_output


def _cfg():
    return specs.get("emergency_admission").build_config([IDX])


@pytest.mark.parametrize("engine", [e for e in ENGINES if e != "reference"])
def test_a_folder_of_other_files_is_refused_and_kept(engine: str, tmp_path: Path, request) -> None:
    warehouse = tiny_warehouse(tmp_path / "wh.duckdb", spec_rows())
    home = tmp_path / "home"
    (home / "features").mkdir(parents=True)
    kept = {home / "features" / "model_train.parquet": b"training table", home / "ledger.jsonl": b"{}"}
    for path, body in kept.items():
        path.write_bytes(body)
    for out in (home / "features", home):
        with pytest.raises(OutputError, match="folder holding other files"):
            run(engine, warehouse, _cfg(), out, request)
    assert {p: p.read_bytes() for p in kept} == kept
    assert sorted(p.name for p in home.iterdir()) == ["features", "ledger.jsonl"]


@pytest.mark.parametrize("engine", [e for e in ENGINES if e != "reference"])
def test_an_earlier_output_is_replaced(engine: str, tmp_path: Path, request) -> None:
    warehouse = tiny_warehouse(tmp_path / "wh.duckdb", spec_rows())
    out = tmp_path / "features.parquet"
    first, _ = run(engine, warehouse, _cfg(), out, request)
    again, _ = run(engine, warehouse, _cfg(), out, request)
    pd.testing.assert_frame_equal(first, again)


def test_replacing_a_folder_of_parts_only(tmp_path: Path) -> None:
    parts = tmp_path / "out.parquet"
    parts.mkdir()
    spark = ("part-00000-1a.zstd.parquet", ".part-00000-1a.zstd.parquet.crc", "_SUCCESS", "._SUCCESS.crc")
    for name in (*spark, "_started_5821", "_committed_5821"):  # the last two: Databricks' commit markers
        (parts / name).write_bytes(b"x")
    new = tmp_path / "new"
    new.write_bytes(b"table")
    replace_output(new, parts)
    assert parts.read_bytes() == b"table"
    home = tmp_path / "home"
    home.mkdir()
    (home / "phm.duckdb").write_bytes(b"warehouse")
    new.write_bytes(b"table")
    with pytest.raises(OutputError, match="phm.duckdb"):
        replace_output(new, home)
    assert (home / "phm.duckdb").read_bytes() == b"warehouse"
    with pytest.raises(OutputError, match="file name"):
        replace_output(new, Path("/"))


def test_an_engine_rebuilds_the_other_engines_output(tmp_path: Path) -> None:
    """DuckDB writes a file, Spark a folder of parts: either replaces the other at the same path (`phm features build
    --as-of D` then the same with `--engine spark` writes to the same default path)."""
    out = tmp_path / "ea.parquet"
    out.write_bytes(b"duckdb table")
    parts = tmp_path / ".ea.parquet.1.tmp"
    parts.mkdir()
    (parts / "part-00000-1a.zstd.parquet").write_bytes(b"spark table")
    replace_output(parts, out)
    assert (out / "part-00000-1a.zstd.parquet").read_bytes() == b"spark table"
    table = tmp_path / ".ea.parquet.2.tmp"
    table.write_bytes(b"duckdb again")
    replace_output(table, out)
    assert out.read_bytes() == b"duckdb again"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ea.parquet"]


@pytest.mark.spark
def test_spark_rebuilds_a_duckdb_output(tmp_path: Path, request) -> None:
    warehouse = tiny_warehouse(tmp_path / "wh.duckdb", spec_rows())
    out = tmp_path / "features.parquet"
    duck, _ = run("duckdb", warehouse, _cfg(), out, request)
    spark, _ = run("spark", warehouse, _cfg(), out, request)
    assert out.is_dir() and len(spark) == len(duck)
