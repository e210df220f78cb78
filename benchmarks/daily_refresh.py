"""Benchmark: the daily refresh of a whole ICS as a user runs it (`phm score daily`), at 3,000,000 people, with
each stage beside a floor measured in the same run, and the scaling from 300,000 to 1,000,000 to 3,000,000.

Prepared once and cached under `benchmarks/.cache/refresh_<N>/` (a PHM home per size): a synthetic ICS
generated and loaded; in the 3 M home, the emergency-admission and flare-up models trained (LightGBM on a
sample of 1,000,000 and 300,000 training rows, flare-up on fortnightly rather than weekly and daily dates:
training is not what this measures), audited, approved and
promoted to `champion`, and the scores of a week before (so the refresh computes the trend as it does
every day). The smaller homes use the 3 M home's registry (the same champions).

Then, each in a fresh child process:

* refresh: `serving.batch.daily.score_daily` for the day after the data ends: features as at the day, scores
  of everyone eligible, bands and segments, reasons for everyone in a worklist band, flare-up risk, the
  trend, and the atomic snapshot write; its stages are timed inside the job (`meta["stages"]`);
* scan floor: one DuckDB scan of every column of every table the worklist model's features read (the
  features stage builds those alone; the flare-up model's features are built in its own stage);
* predict floor: the raw LightGBM booster predicting the same people (no calibration, no pandas);
* explain floor: the raw booster's `pred_contrib` for the same banded people (no words, no JSON);
* write floor: a plain pyarrow Parquet write of the snapshot's two tables, already in memory;
* spark: the same refresh on local Spark (`--engine spark`; skipped without the spark extra or with
  `--no-spark`), for the extrapolation to England on a cluster.

Usage::

    .venv/bin/python -m benchmarks.daily_refresh [--persons 3000000] [--scaling 300000 1000000] [--no-spark] [--trial]

Results: `benchmarks/results/daily_refresh.json` (a trial or another size: `benchmarks/results/trial/`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

from benchmarks.measure import (
    CACHE,
    GIB,
    Figure,
    Run,
    Target,
    add_trial,
    child_report,
    run_child,
    safety_case_current,
    say,
)
from phm.core.sql import literal

TARGET_SECONDS, TARGET_GIB = 600.0, 24.0
ENGLAND = 57_000_000


def home_for(persons: int) -> Path:
    return CACHE / f"refresh_{persons}"


def _settings(persons: int, registry: int | None = None):
    """A home's settings, with the registry (and the safety case: its hazard log and signed head) of the registry's
    home; the children share the registry home's ledger key (`PHM_LEDGER_KEY_FILE`, set in `main`)."""
    import shutil

    from phm.core.settings import Settings

    reg, home = home_for(registry or persons), home_for(persons)
    if reg == home:
        return Settings(home=home, tracking_uri=f"sqlite:///{reg / 'mlflow' / 'mlflow.db'}")
    head = Path("security", "anchors", "safety__hazard_log.jsonl.head")  # the log's signed head, kept apart from it
    for part in (Path("safety", "hazard_log.jsonl"), head):
        if (reg / part).exists():
            (home / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(reg / part, home / part)
    return Settings(home=home, tracking_uri=f"sqlite:///{reg / 'mlflow' / 'mlflow.db'}")


def prepare(persons: int, registry: int) -> None:
    """Generate and load the ICS; in the registry's home also train, audit, approve and promote champions."""
    home = home_for(persons)
    if (home / "ready").exists():
        if persons == registry:
            safety_case_current(_settings(persons, registry))  # a cache from before configuration approvals
        return
    from features.sources.loader import load
    from features.synthetic.config import GeneratorConfig
    from features.synthetic.generator import generate

    settings = _settings(persons, registry)
    data = home / "ics"
    if not settings.warehouse_path.exists():
        say(f"generating {persons:,} people (once)")
        generate(GeneratorConfig(persons=persons, seed=12), data, progress=say)
        say("loading them")
        load(settings, data, progress=say)
        import shutil

        shutil.rmtree(data, ignore_errors=True)
    if persons == registry:
        _champions(settings)
        safety_case_current(settings)
    from serving.batch.common import default_date
    from serving.batch.daily import score_daily

    say("scoring a week before (for the trend)")
    score_daily(settings, default_date(settings.warehouse_path) - timedelta(days=7), progress=say)
    (home / "ready").write_text("ok")


def _champions(settings) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from evaluation.fairness.config import AuditConfig
    from serving.governance.model_audit import audit_model
    from models.specs.policy import resolve
    from serving.governance.signoff import decide, promote
    from training.train_validate import run
    from training import tracking
    from training.config import default_config
    from models import specs

    tracking.configure(settings)
    for name, rows in (("emergency_admission", 1_000_000), ("flare_up", 300_000)):
        try:
            MlflowClient().get_model_version_by_alias(name, "champion")
            continue
        except MlflowException:
            pass
        say(f"training {name} on {rows:,} sampled rows (once)")
        cfg = default_config(name).model_copy(update={"max_train_rows": rows, "bootstrap_draws": 20})
        if name == "flare_up":  # 3 M people's daily person-days for 9 months do not fit in memory: fortnightly
            d = specs.get(name).training  # the specification's dates (the synthetic ICS's data end there)
            cfg = cfg.model_copy(
                update={"train_dates": list(d.train_dates[::2]), "validation_dates": list(d.validation_dates[::14])}
            )
        result = run(cfg, settings, progress=say)
        out = audit_model(
            settings,
            name,
            result.version,
            AuditConfig(bootstrap_draws=50, top_share=resolve(settings, name).top_share),
            progress=say,
        )
        decide(
            settings,
            name,
            result.version,
            "approved",
            "Benchmark",
            "benchmark model",
            accept_flags=bool(out.result.flags),
        )
        promote(settings, name, result.version, by="benchmark")


# ---- child steps ----------------------------------------------------------------------------------
def step_refresh(persons: int, registry: int) -> tuple[float, int]:
    from serving.batch.daily import score_daily

    settings = _settings(persons, registry)
    t0 = time.perf_counter()
    meta = score_daily(settings, progress=say)
    seconds = time.perf_counter() - t0
    (home_for(persons) / "last_refresh.json").write_text(json.dumps(meta, indent=1, default=str))
    return seconds, meta["people"]


def _last(persons: int) -> dict:
    return json.loads((home_for(persons) / "last_refresh.json").read_text())


def step_scan(persons: int, registry: int) -> tuple[float, int]:
    import duckdb

    from features.build import required_columns
    from models import specs

    need: dict[str, set[str]] = {}
    for table, cols in required_columns(specs.worklist().features).items():  # what the features stage reads
        need.setdefault(table, set()).update(cols)
    con = duckdb.connect()
    con.execute(f"ATTACH {literal(_settings(persons).warehouse_path)} AS wh (READ_ONLY)")
    rows = 0
    t0 = time.perf_counter()
    for table, cols in need.items():
        aggs = ", ".join(f"bit_xor(hash({c}))" for c in sorted(cols))
        rows += con.execute(f"SELECT count(*), {aggs} FROM wh.{table}").fetchone()[0]
    return time.perf_counter() - t0, rows


def _champion_and_features(persons: int, registry: int):
    import pandas as pd

    from training.registry import load_champion
    from training import tracking

    settings = _settings(persons, registry)
    tracking.configure(settings)
    champion = load_champion("emergency_admission")
    folder = Path(_last(persons)["folder"])
    frame = pd.read_parquet(folder / "features.parquet")
    X = frame[list(champion.model.feature_names_in_)].to_numpy("float64")
    return champion, folder, X


def step_predict(persons: int, registry: int) -> tuple[float, int]:
    champion, _, X = _champion_and_features(persons, registry)
    booster = champion.model.booster_.booster_
    t0 = time.perf_counter()
    booster.predict(X, num_iteration=champion.model.best_iteration_)
    return time.perf_counter() - t0, len(X)


def step_explain(persons: int, registry: int) -> tuple[float, int]:
    import pandas as pd

    champion, folder, X = _champion_and_features(persons, registry)
    band = pd.read_parquet(folder / "scores.parquet", columns=["band"]).band.to_numpy()
    shown = X[band != "routine"]
    booster = champion.model.booster_.booster_
    t0 = time.perf_counter()
    booster.predict(shown, pred_contrib=True, num_iteration=champion.model.best_iteration_)
    return time.perf_counter() - t0, len(shown)


def step_write(persons: int, registry: int) -> tuple[float, int]:
    import pyarrow.parquet as pq

    folder = Path(_last(persons)["folder"])
    tables = {name: pq.read_table(folder / f"{name}.parquet") for name in ("scores", "features")}
    out = home_for(persons) / "write_floor"
    out.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    for name, table in tables.items():
        pq.write_table(table, out / f"{name}.parquet")
    seconds = time.perf_counter() - t0
    for name in tables:
        (out / f"{name}.parquet").unlink()
    return seconds, tables["scores"].num_rows


def step_spark(persons: int, registry: int) -> tuple[float, int]:
    """The same refresh on local Spark (`phm score daily --engine spark`), after the Parquet copy of the warehouse
    is made (untimed: a cluster holds its tables already)."""
    from features.engine.export import ensure_exported
    from serving.batch.daily import score_daily

    settings = _settings(persons, registry).model_copy(
        update={"spark_conf": {"spark.driver.memory": "14g", "spark.sql.shuffle.partitions": "16"}}
    )
    ensure_exported(settings.warehouse_path, settings.warehouse_path.parent / "tables")
    t0 = time.perf_counter()
    meta = score_daily(settings, progress=say, engine="spark")
    return time.perf_counter() - t0, meta["people"]


STEPS = {
    "refresh": step_refresh,
    "spark": step_spark,
    "scan": step_scan,
    "predict": step_predict,
    "explain": step_explain,
    "write": step_write,
}


def child_main() -> None:
    step, persons, registry = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if step == "prepare":
        prepare(persons, registry)
        child_report(0.0, 0)
        return
    seconds, rows = STEPS[step](persons, registry)
    child_report(seconds, rows)


FLOORS = {
    "features": ("scan", "one DuckDB scan of every column the worklist model's features read"),
    "scoring": ("predict", "raw booster prediction of the same people"),
    "reasons": ("explain", "raw booster pred_contrib of the same banded people"),
    "write": ("write", "plain Parquet write of the snapshot's tables"),
}


def main(argv: list[str] | None = None) -> None:
    parser = add_trial(
        argparse.ArgumentParser(prog="python -m benchmarks.daily_refresh", description=__doc__.splitlines()[0])
    )
    parser.add_argument("--persons", type=int, default=3_000_000)
    parser.add_argument(
        "--scaling",
        type=int,
        nargs="*",
        default=[300_000, 1_000_000],
        help="smaller populations refreshed with the same champions (time per person)",
    )
    parser.add_argument("--no-spark", action="store_true", help="skip the same refresh on local Spark")
    args = parser.parse_args(argv)
    run = Run("daily_refresh", args, parser)
    try:
        import pyspark  # noqa: F401

        spark = not args.no_spark
    except ImportError:
        spark = False
    env = {
        **os.environ,
        "PHM_HOME": str(home_for(args.persons)),  # one deployment: one ledger key for every home
        "PHM_LEDGER_KEY_FILE": str(home_for(args.persons) / "security" / "ledger.key"),
    }
    for persons in [args.persons, *args.scaling]:
        if not (home_for(persons) / "ready").exists():
            run_child("benchmarks.daily_refresh", "prepare", [str(persons), str(args.persons)], env)
    main_run = {
        s: run_child("benchmarks.daily_refresh", s, [str(args.persons), str(args.persons)], env)
        for s in ("refresh", "scan", "predict", "explain", "write")
    }
    scaling = {
        p: run_child("benchmarks.daily_refresh", "refresh", [str(p), str(args.persons)], env) for p in args.scaling
    }
    on_spark = (
        run_child("benchmarks.daily_refresh", "spark", [str(args.persons), str(args.persons)], env) if spark else None
    )
    meta = _last(args.persons)
    results = {
        "persons": args.persons,
        "date": meta["date"],
        "scored": meta["people"],
        "stages": meta["stages"],
        "steps": main_run,
        "scaling": {str(p): r for p, r in scaling.items()},
        "spark": on_spark,
    }
    targets, figures = record(args.persons, results)
    run.write_results(
        results,
        targets,
        figures,
        note=(
            "Stages timed inside the job (meta['stages']); each floor in its own process in the same run. England is "
            "extrapolated from the time per person, ICS by ICS on one such machine, or on a Spark cluster if the cost "
            "per person stays linear and spreads evenly over the cores (plus about a minute of fixed cost)."
        ),
    )


def record(persons: int, results: dict) -> tuple[list[Target], list[Figure]]:
    """The target (a whole ICS's refresh under 10 minutes and 24 GiB on 2 cores), each stage beside its floor, the
    time per person at each size and the extrapolations to England."""
    main_run, st = results["steps"], results["stages"]
    total, peak = main_run["refresh"]["seconds"], main_run["refresh"]["peak_bytes"]
    at = f"{persons:,} people ({results['scored']:,} scored)"
    targets = [
        Target(f"daily refresh, {at}", total, TARGET_SECONDS, "s"),
        Target("daily refresh peak memory", peak / GIB, TARGET_GIB, "GiB"),
    ]
    figures = []
    for name, row in st.items():
        key, words = FLOORS.get(name, (None, ""))
        figures.append(Figure(f"stage: {name}", row["seconds"], "s", main_run[key]["seconds"] if key else None, words))
    figures.append(Figure("people explained (worklist bands)", main_run["explain"]["rows"]))
    timing = {**{int(p): r["seconds"] for p, r in results["scaling"].items()}, persons: total}
    for p in sorted(timing):
        figures.append(Figure(f"time per person at {p:,} people", timing[p] / p * 1e6, "us"))
    per = total / persons
    figures.append(
        Figure(f"England ({ENGLAND:,} people) ICS by ICS on one such machine (extrapolated)", per * ENGLAND / 60, "min")
    )
    if results["spark"]:
        spark_s = results["spark"]["seconds"]
        core_us = spark_s * 2 / persons * 1e6
        figures += [
            Figure("the same refresh on local Spark (2 cores)", spark_s, "s"),
            Figure("Spark core time per person", core_us, "us"),
            Figure("England on a 64-core Spark cluster (extrapolated)", core_us * ENGLAND / 1e6 / 64 / 60, "min"),
        ]
    return targets, figures


if __name__ == "__main__":
    main()
