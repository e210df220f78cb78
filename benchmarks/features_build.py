"""Benchmark: build the emergency-admission feature set for N persons (default 1,000,000).

The warehouse comes from `--warehouse`, or is generated and loaded once under
`benchmarks/.cache/features_<N>/` and reused. Two steps run, each in its own child process:

* build: `features.build.build` for index date 2024-04-01 (cohort, every feature, labels, Parquet);
* floor: DuckDB scanning, once, every column of every table the feature set reads
  (`SELECT count(*), bit_xor(hash(col)), ... FROM table`), the least any engine must do;
* groupby: one `GROUP BY person_id` per source table, the least any per-person feature needs;
* write: a plain Parquet write (zstd) of the rows the build wrote, already in DuckDB: the least the
  output costs. Group-by plus write is the least a from-scratch build can take, whatever the engine.

Usage::

    .venv/bin/python -m benchmarks.features_build [--persons N] [--warehouse PATH] [--trial]

Results: `benchmarks/results/features_build.json` (a trial or another size: `benchmarks/results/trial/`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path

from benchmarks.measure import GIB, Figure, Run, Target, add_trial, cached_warehouse, child_report, run_child, say
from phm.core.sql import literal

TARGET_SECONDS, TARGET_RATIO = 60.0, 4.0
INDEX = date(2024, 4, 1)


def step_prepare(persons: int, warehouse: str) -> tuple[float, int]:
    """Generate and load the synthetic ICS (only when the cached warehouse is missing)."""
    from features.sources.loader import load
    from features.synthetic.config import GeneratorConfig
    from features.synthetic.generator import generate
    from phm.core.settings import Settings

    data = Path(warehouse).parent / "data"
    t0 = time.perf_counter()
    generate(GeneratorConfig(persons=persons, seed=1), data, progress=say)
    report = load(Settings(home=Path(warehouse).parent / "home"), data, warehouse=Path(warehouse), progress=say)
    return time.perf_counter() - t0, report.tables["patients"].rows_loaded


def step_build(persons: int, warehouse: str) -> tuple[float, int]:
    from models import specs
    from features.build import build

    out = Path(warehouse).parent / "features.parquet"
    t0 = time.perf_counter()
    manifest = build(Path(warehouse), specs.get("emergency_admission").build_config([INDEX]), out)
    return time.perf_counter() - t0, manifest["rows"]


def step_floor(persons: int, warehouse: str) -> tuple[float, int]:
    import duckdb

    from features.build import required_columns
    from models import specs

    con = duckdb.connect()
    con.execute(f"ATTACH {literal(warehouse)} AS wh (READ_ONLY)")
    rows = 0
    t0 = time.perf_counter()
    for table, cols in required_columns(specs.get("emergency_admission").features).items():
        # hash every value: min/max alone would be answered from Parquet-style statistics
        aggs = ", ".join(f"bit_xor(hash({c}))" for c in sorted(cols))
        rows += con.execute(f"SELECT count(*), {aggs} FROM wh.{table}").fetchone()[0]
    return time.perf_counter() - t0, rows


def step_groupby(persons: int, warehouse: str) -> tuple[float, int]:
    """A second, stricter reference: one GROUP BY person per source table (any per-person feature needs it)."""
    import duckdb

    from features.build import required_columns
    from models import specs

    con = duckdb.connect()
    con.execute(f"ATTACH {literal(warehouse)} AS wh (READ_ONLY)")
    rows = 0
    t0 = time.perf_counter()
    for table, cols in required_columns(specs.get("emergency_admission").features).items():
        if "person_id" not in cols:
            continue
        con.execute(f"CREATE OR REPLACE TEMP TABLE g AS SELECT person_id, count(*) AS n FROM wh.{table} GROUP BY 1")
        rows += con.execute("SELECT sum(n) FROM g").fetchone()[0] or 0
    return time.perf_counter() - t0, rows


def step_write(persons: int, warehouse: str) -> tuple[float, int]:
    """A third reference: write the built table's rows to Parquet once, from memory (no features computed)."""
    import duckdb

    con = duckdb.connect()
    built = Path(warehouse).parent / "features.parquet"
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_parquet({literal(built)})")
    out = Path(warehouse).parent / "write_floor.parquet"
    t0 = time.perf_counter()
    con.execute(f"COPY t TO {literal(out)} (FORMAT parquet, COMPRESSION zstd)")
    seconds = time.perf_counter() - t0
    out.unlink()
    return seconds, con.execute("SELECT count(*) FROM t").fetchone()[0]


STEPS = {
    "prepare": step_prepare,
    "build": step_build,
    "floor": step_floor,
    "groupby": step_groupby,
    "write": step_write,
}


REPEATS = 3  # this machine's speed varies from minute to minute: each step reports its best of three runs


def child_main() -> None:
    step, persons, warehouse = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    runs = [STEPS[step](persons, warehouse) for _ in range(1 if step == "prepare" else REPEATS)]
    child_report(min(r[0] for r in runs), runs[0][1])


def record(persons: int, res: dict) -> tuple[list[Target], list[Figure]]:
    """The issue's targets (under 60 s, under 4x the scan floor, for 1 M persons) and the build beside each
    floor. The scan is the least any engine must do; group-by plus write is the least a from-scratch build can
    take (a per-person feature needs a group-by per table; the output must be written), so a build under 4x the
    scan alone is likely out of reach: the target is kept as the issue set it, and MISS says so."""
    b, f, g, w = res["build"], res["floor"], res["groupby"], res["write"]
    at = f"{persons:,} persons"
    targets = [
        Target(f"feature build, {at}", b["seconds"], TARGET_SECONDS, "s"),
        Target("feature build / scan floor", b["seconds"] / f["seconds"], TARGET_RATIO, "x"),
    ]
    least = g["seconds"] + w["seconds"]
    figures = [
        Figure(
            f"feature build ({b['rows']:,} cohort rows)",
            b["seconds"],
            "s",
            f["seconds"],
            "one DuckDB scan of every column read",
        ),
        Figure("feature build", b["seconds"], "s", least, "group-by per table + Parquet write of the output"),
        Figure("group-by per table", g["seconds"], "s", f["seconds"], "one DuckDB scan of every column read"),
        Figure("Parquet write of the output", w["seconds"], "s"),
        Figure("feature build peak memory", b["peak_bytes"] / GIB, "GiB"),
    ]
    return targets, figures


def main(argv: list[str] | None = None) -> None:
    parser = add_trial(
        argparse.ArgumentParser(prog="python -m benchmarks.features_build", description=__doc__.splitlines()[0])
    )
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--warehouse", type=Path, default=None, help="an existing warehouse to build from")
    args = parser.parse_args(argv)
    run = Run("features_build", args, parser)
    warehouse = cached_warehouse(args.persons, args.warehouse)
    env = dict(os.environ)
    res = {
        s: run_child("benchmarks.features_build", s, [str(args.persons), str(warehouse)], env)
        for s in ("build", "floor", "groupby", "write")
    }
    targets, figures = record(args.persons, res)
    run.write_results(
        {"persons": args.persons, "index_date": str(INDEX), "steps": res},
        targets,
        figures,
        note=f"emergency_admission at {INDEX}; each step the best of {REPEATS} runs in its own process.",
    )


if __name__ == "__main__":
    main()
