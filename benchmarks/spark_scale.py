"""Benchmark: feature build and batch scoring on local Spark (local[2]) against DuckDB on this machine, at
1,000,000 and 5,000,000 synthetic persons, with the scaling from 1 M to 5 M (time per person).

The 1 M warehouse is the cached synthetic ICS of `benchmarks.features_build`. The 5 M warehouse is that ICS
five times over, each copy's people given new pseudonymous ids (a high bit flipped: 5,000,000 distinct
people, the same histories five times): generating 5 M people at once needs more memory than this machine
has, and the point here is cost at scale, not new histories. Both are cached in `benchmarks/.cache/`.

A quickly trained emergency-admission model (LightGBM + calibration, fitted once on 200,000 training rows of
the 1 M ICS, cached) scores everyone eligible at 2024-04-01. Steps, each in a fresh child process:

* duckdb: `features.build.build` on the DuckDB warehouse, then the model's `predict_proba` in-process on the
  built table, then a Parquet write of (person_id, risk);
* spark: the same build by the Spark engine (from the Parquet copy of the warehouse, made beforehand and not
  timed), then `models.batch.score_spark` on the executors writing (person_id, risk) as Parquet.

Peak memory is the step's own (Python, and for Spark the JVM's high-water mark). Usage::

    .venv/bin/python -m benchmarks.spark_scale [--sizes 1000000 5000000] [--driver-memory 14g] [--trial]
    .venv/bin/python -m benchmarks.spark_scale --base 3000 --sizes 3000 6000 --driver-memory 2g   # a quick check

Results: `benchmarks/results/spark_scale.json` (a trial or another size: `benchmarks/results/trial/`).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time
from datetime import date
from pathlib import Path

from benchmarks.measure import CACHE, GIB, Figure, Run, add_trial, cached_warehouse, child_report, say
from phm.core.sql import literal

INDEX = date(2024, 4, 1)
MODEL = CACHE / "spark_scale_model.pkl"  # fitted on the 1 M ICS; other bases get their own (`model_for`)
COPIES_BIT = 58  # person_id XOR (copy << 58): ids stay positive 63-bit integers


def replicated_warehouse(base: Path, persons: int, base_persons: int = 1_000_000) -> Path:
    """The base warehouse `persons // base_persons` times over, with distinct person ids per copy (cached)."""
    copies = persons // base_persons
    if copies <= 1:
        return base
    path = (
        CACHE
        / (f"scale_{persons}" if base_persons == 1_000_000 else f"scale_{persons}_of_{base_persons}")
        / "phm.duckdb"
    )
    if path.exists():
        return path
    import duckdb

    from features.engine.export import TABLES

    say(f"building the {persons:,}-person warehouse ({copies} copies of {base})")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp))
    con.execute(f"ATTACH {literal(base)} AS base (READ_ONLY)")
    present = {
        r[0]
        for r in con.execute("SELECT table_name FROM information_schema.tables WHERE table_catalog = 'base'").fetchall()
    }
    for table in [t for t in TABLES if t in present]:
        cols = [
            r[0]
            for r in con.execute(
                f"SELECT column_name FROM information_schema.columns WHERE "
                f"table_catalog = 'base' AND table_name = '{table}'"
            ).fetchall()
        ]
        if "person_id" not in cols:
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM base.{table}")
            continue
        parts = " UNION ALL ".join(
            f"SELECT * REPLACE (xor(person_id, {k << COPIES_BIT}) AS person_id) FROM base.{table}"
            for k in range(copies)
        )
        con.execute(f"CREATE TABLE {table} AS {parts}")
    distinct = con.execute("SELECT count(DISTINCT person_id), count(*) FROM patients").fetchone()
    assert distinct[0] == distinct[1], "person ids collided across copies"
    con.close()
    os.replace(tmp, path)
    return path


def model_for(base_persons: int) -> Path:
    return CACHE / ("spark_scale_model.pkl" if base_persons == 1_000_000 else f"spark_scale_model_{base_persons}.pkl")


def train_model(warehouse: Path, base_persons: int = 1_000_000) -> None:
    """Fit and cache a quick model on the base ICS (no MLflow: only scoring is measured)."""
    global MODEL
    MODEL = model_for(base_persons)
    if MODEL.exists():
        return
    from phm.core.settings import Settings
    from training.config import TuningGrid, default_config
    from training.jobs import fit

    say("training a quick emergency-admission model on 200,000 rows (once)")
    home = CACHE / ("spark_scale_home" if base_persons == 1_000_000 else f"spark_scale_home_{base_persons}")
    (home / "warehouse").mkdir(parents=True, exist_ok=True)
    link = home / "warehouse" / "phm.duckdb"
    if not link.exists():
        link.symlink_to(warehouse)
    cfg = default_config("emergency_admission").model_copy(
        update={"grid": TuningGrid(num_leaves=[31], min_child_samples=[100]), "max_train_rows": 200_000}
    )
    job = fit(cfg, Settings(home=home), progress=say)
    MODEL.write_bytes(pickle.dumps(job.model))


def jvm_peak_bytes(spark) -> int:
    """High-water mark of the Spark JVM's resident memory (VmHWM)."""
    try:
        pid = spark.sparkContext._gateway.proc.pid
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (AttributeError, OSError, ValueError):
        pass
    return 0


def step_duckdb(warehouse: str, work: str) -> tuple[float, int]:
    import pandas as pd

    from models import specs

    from features.build import build

    model = pickle.loads(MODEL.read_bytes())
    out = Path(work) / "duckdb_features.parquet"
    t0 = time.perf_counter()
    build(Path(warehouse), specs.get("emergency_admission").build_config([INDEX]), out)
    built = time.perf_counter()
    frame = pd.read_parquet(out, columns=["person_id", *model.feature_names_in_])
    risk = model.predict_proba(frame[list(model.feature_names_in_)].astype("float64"))[:, 1]
    pd.DataFrame({"person_id": frame.person_id, "risk": risk}).to_parquet(Path(work) / "duckdb_scores.parquet")
    seconds = time.perf_counter() - t0
    say(f"duckdb: build {built - t0:.1f} s, scoring {seconds - (built - t0):.1f} s")
    _report_split(built - t0, seconds - (built - t0))
    return seconds, len(frame)


def step_spark(warehouse: str, work: str, memory: str) -> tuple[float, int]:
    from models import specs
    from features.build import build
    from features.engine.export import ensure_exported
    from features.engine.spark_engine import SparkEngine
    from features.engine.spark_session import spark_session
    from models.batch import score_spark
    from phm.core.settings import Settings

    model = pickle.loads(MODEL.read_bytes())
    tables = Path(warehouse).parent / "tables"
    ensure_exported(Path(warehouse), tables)  # the copy Spark reads: made once, not timed
    settings = Settings(
        home=Path(work) / "home",
        spark_tables=str(tables),
        spark_conf={"spark.driver.memory": memory, "spark.sql.shuffle.partitions": "16"},
    )
    spark = spark_session(settings)
    out = Path(work) / "spark_features.parquet"
    t0 = time.perf_counter()
    with SparkEngine(settings, session=spark) as engine:
        build(engine, specs.get("emergency_admission").build_config([INDEX]), out)
    built = time.perf_counter()
    features = spark.read.parquet(str(out.resolve()))
    score_spark(features, model, ["person_id"]).write.mode("overwrite").parquet(
        str((Path(work) / "spark_scores").resolve())
    )
    seconds = time.perf_counter() - t0
    rows = spark.read.parquet(str((Path(work) / "spark_scores").resolve())).count()
    say(f"spark: build {built - t0:.1f} s, scoring {seconds - (built - t0):.1f} s")
    _report_split(built - t0, seconds - (built - t0), jvm_peak_bytes(spark))
    spark.stop()
    return seconds, rows


def _report_split(build_s: float, score_s: float, jvm: int = 0) -> None:
    print(f"BENCH_SPLIT {build_s:.3f} {score_s:.3f} {jvm}", flush=True)


def child_main() -> None:
    global MODEL
    step, warehouse, work = sys.argv[1], sys.argv[2], sys.argv[3]
    MODEL = model_for(int(sys.argv[-1]))
    Path(work).mkdir(parents=True, exist_ok=True)
    seconds, rows = step_duckdb(warehouse, work) if step == "duckdb" else step_spark(warehouse, work, sys.argv[4])
    child_report(seconds, rows)


def main(argv: list[str] | None = None) -> None:
    import subprocess

    parser = add_trial(
        argparse.ArgumentParser(prog="python -m benchmarks.spark_scale", description=__doc__.splitlines()[0])
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument(
        "--base",
        type=int,
        default=1_000_000,
        help="persons in the generated ICS that larger sizes replicate (sizes are multiples of it)",
    )
    parser.add_argument("--driver-memory", default="14g", help="Spark driver (local executor) memory")
    args = parser.parse_args(argv)
    run = Run("spark_scale", args, parser)
    base = cached_warehouse(args.base, None)
    train_model(base, args.base)
    rows = {}
    for persons in args.sizes:
        warehouse = replicated_warehouse(base, persons, args.base)
        work = CACHE / f"spark_scale_work_{persons}"
        for step in ("duckdb", "spark"):
            extra = [args.driver_memory] if step == "spark" else []
            cmd = [
                sys.executable,
                "-c",
                "from benchmarks.spark_scale import child_main; child_main()",
                step,
                str(warehouse),
                str(work),
                *extra,
                str(args.base),
            ]
            say(f"{step} at {persons:,} persons")
            proc = subprocess.run(
                cmd, cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
            )
            if proc.returncode != 0:
                sys.exit(f"{step} at {persons:,} failed (exit {proc.returncode})")
            split = [ln.split()[1:] for ln in proc.stdout.splitlines() if ln.startswith("BENCH_SPLIT")][-1]
            result = [ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_RESULT")][-1]
            res = json.loads(result.split(" ", 1)[1])
            rows[f"{persons}/{step}"] = {
                **res,
                "build": float(split[0]),
                "score": float(split[1]),
                "peak": res["peak_bytes"] + int(split[2]),
            }
    run.write_results(
        {"index_date": str(INDEX), "sizes": args.sizes, "steps": rows},
        [],
        record(args.sizes, rows),
        note="Spark: local[2]; peak memory for Spark is the JVM's high-water mark plus Python's. No "
        "target: DuckDB is expected to win on one machine; the question is how Spark's cost grows.",
    )


def record(sizes: list[int], rows: dict) -> list[Figure]:
    """Each engine's build, scoring and total at each size, Spark's time against DuckDB's, and the scaling (time per
    person at the largest size against the smallest; 1.00 = linear)."""
    figures = []
    for persons in sizes:
        for step in ("duckdb", "spark"):
            r = rows[f"{persons}/{step}"]
            engine = "DuckDB" if step == "duckdb" else "Spark"
            at = f"{engine}, {persons:,} persons ({r['rows']:,} scored)"
            figures += [
                Figure(f"{at}: build", r["build"], "s"),
                Figure(f"{at}: score", r["score"], "s"),
                Figure(f"{at}: total", r["seconds"], "s"),
                Figure(f"{at}: peak memory", r["peak"] / GIB, "GiB"),
                Figure(f"{at}: time per person", r["seconds"] / persons * 1e6, "us"),
            ]
        figures.append(
            Figure(
                f"Spark / DuckDB time, {persons:,} persons",
                rows[f"{persons}/spark"]["seconds"] / rows[f"{persons}/duckdb"]["seconds"],
                "x",
            )
        )
    if len(sizes) > 1:
        lo, hi = sizes[0], sizes[-1]
        for step in ("duckdb", "spark"):
            a, b = rows[f"{lo}/{step}"], rows[f"{hi}/{step}"]
            engine = "DuckDB" if step == "duckdb" else "Spark"
            figures += [
                Figure(
                    f"{engine}: time per person at {hi:,} / at {lo:,}", (b["seconds"] / hi) / (a["seconds"] / lo), "x"
                ),
                Figure(f"{engine}: each further person", (b["seconds"] - a["seconds"]) / (hi - lo) * 1e6, "us"),
            ]
    return figures


if __name__ == "__main__":
    main()
