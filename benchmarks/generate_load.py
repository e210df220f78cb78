"""Benchmark: generate and load N synthetic persons (default 1,000,000).

Each stage and each floor runs in its own child process, which times the work with
`time.perf_counter()` and reports its own peak RSS (`ru_maxrss`) back as one JSON line on stdout.
Floors are measured in the same run on the same files:

* generate floor: plain `pyarrow.parquet.write_table` of every generated Parquet file (read into
  memory first, untimed), with the generator's compression (zstd);
* load floor: plain DuckDB `CREATE TABLE .. AS SELECT * FROM read_parquet(file)` of every file
  into a temporary DuckDB file, then CHECKPOINT.

Usage::

    .venv/bin/python -m benchmarks.generate_load [--persons N] [--keep DIR] [--trial]

Results: `benchmarks/results/generate_load.json` (a trial or another size: `benchmarks/results/trial/`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.measure import CACHE, GIB, Figure, Result, Run, Target, add_trial, child_report, run_child, say
from phm.core.sql import literal

TARGET_SECONDS, TARGET_GIB = 180.0, 8.0


# ---- child side ------------------------------------------------------------------------------
def _parquet_files(data: Path) -> list[Path]:
    """Every Parquet file the generator wrote (extracts and truth/)."""
    return sorted(data.rglob("*.parquet"))


def stage_generate(persons: int, data: str) -> tuple[float, int]:
    """Run the synthetic generator; returns (seconds, rows written to the extracts)."""
    from features.synthetic.config import GeneratorConfig
    from features.synthetic.generator import generate

    cfg = GeneratorConfig(persons=persons, seed=1)
    t0 = time.perf_counter()
    result = generate(cfg, Path(data), progress=say)
    return time.perf_counter() - t0, sum(result.rows.values())


def stage_load(persons: int, data: str) -> tuple[float, int]:
    """Run the warehouse loader; returns (seconds, rows read from the extracts)."""
    from features.sources.loader import load
    from phm.core.settings import get_settings

    settings = get_settings()
    t0 = time.perf_counter()
    report = load(settings, Path(data), progress=say)
    return time.perf_counter() - t0, sum(t.rows_read for t in report.tables.values())


def floor_generate(persons: int, data: str) -> tuple[float, int]:
    """Plain Parquet write of every generated file (tables read into memory first, untimed)."""
    import pyarrow.parquet as pq

    files = _parquet_files(Path(data))
    tables = [pq.read_table(f) for f in files]
    out = CACHE / "floor_parquet"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    for i, table in enumerate(tables):
        pq.write_table(table, out / f"{i}.parquet", compression="zstd", row_group_size=1_000_000)
    seconds = time.perf_counter() - t0
    shutil.rmtree(out, ignore_errors=True)
    return seconds, sum(t.num_rows for t in tables)


def floor_load(persons: int, data: str) -> tuple[float, int]:
    """Plain DuckDB copy of every generated file into a temporary DuckDB file."""
    import duckdb

    files = _parquet_files(Path(data))
    db = CACHE / "floor.duckdb"
    db.unlink(missing_ok=True)
    t0 = time.perf_counter()
    con = duckdb.connect(str(db))
    rows = 0
    for i, f in enumerate(files):
        con.execute(f"CREATE TABLE t{i} AS SELECT * FROM read_parquet({literal(f)})")
        rows += con.execute(f"SELECT count(*) FROM t{i}").fetchone()[0]
    con.execute("CHECKPOINT")
    con.close()
    seconds = time.perf_counter() - t0
    db.unlink(missing_ok=True)
    return seconds, rows


STEPS: dict[str, Callable[[int, str], tuple[float, int]]] = {
    "generate": stage_generate,
    "generate_floor": floor_generate,
    "load": stage_load,
    "load_floor": floor_load,
}


def child_main() -> None:
    """Entry point of a child process: `python -c ... STEP PERSONS DATA`."""
    step, persons, data = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    seconds, rows = STEPS[step](persons, data)
    child_report(seconds, rows)


# ---- parent side -----------------------------------------------------------------------------
def record(persons: int, res: dict[str, Result]) -> tuple[list[Target], list[Figure]]:
    """The issue's target (generate + load 1 M persons in under 3 minutes and 8 GiB) and each stage beside its
    floor: generate = plain Parquet write of the same rows, load = plain DuckDB copy of the same files (every
    Parquet file written, truth/ included: the loader reads truth/ too)."""
    total = res["generate"]["seconds"] + res["load"]["seconds"]
    peak = max(res["generate"]["peak_bytes"], res["load"]["peak_bytes"])
    at = f"{persons:,} persons"
    targets = [
        Target(f"generate + load, {at}", total, TARGET_SECONDS, "s"),
        Target(f"peak memory, {at}", peak / GIB, TARGET_GIB, "GiB"),
    ]
    figures = []
    for stage, words in (("generate", "plain Parquet write"), ("load", "plain DuckDB copy")):
        s, f = res[stage], res[f"{stage}_floor"]
        figures += [
            Figure(f"{stage} ({s['rows']:,} extract rows)", s["seconds"], "s", f["seconds"], words),
            Figure(f"{stage} peak memory", s["peak_bytes"] / GIB, "GiB", f["peak_bytes"] / GIB, words),
        ]
    return targets, figures


def main(argv: list[str] | None = None) -> None:
    parser = add_trial(
        argparse.ArgumentParser(prog="python -m benchmarks.generate_load", description=__doc__.splitlines()[0])
    )
    parser.add_argument("--persons", type=int, default=1_000_000, help="synthetic persons (default 1,000,000)")
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="write the generated extracts here and keep them (default: a folder under "
        "benchmarks/.cache/, deleted after the run)",
    )
    args = parser.parse_args(argv)
    run = Run("generate_load", args, parser, neutral=("keep",))
    data = (args.keep or CACHE / "data").resolve()
    home = CACHE / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PHM_HOME": str(home)}
    res: dict[str, Result] = {}
    try:
        for step in STEPS:
            res[step] = run_child("benchmarks.generate_load", step, [str(args.persons), str(data)], env)
    finally:
        if args.keep is None:
            shutil.rmtree(data, ignore_errors=True)
    targets, figures = record(args.persons, res)
    run.write_results(
        {"persons": args.persons, "steps": res},
        targets,
        figures,
        note="Stage seconds exclude process start-up; each step's peak memory is its own process's.",
    )


if __name__ == "__main__":
    main()
