"""Benchmark: train the emergency-admission model on N persons and score through MLflow.

Steps, each in its own child process (time and own peak memory):

* train: the whole `phm train emergency-admission` job (feature builds for three training
  index dates and the validation date, tuning, fit, calibration, evaluation, MLflow logging and
  registration) against a copy-free PHM home pointing at the warehouse;
* score_mlflow: load `models:/emergency_admission@candidate` from MLflow and score every
  validation person (pyfunc: schema check, LightGBM, calibration);
* score_raw: the same rows through the raw LightGBM booster in-process (the floor).

Usage::

    .venv/bin/python -m benchmarks.train_score [--persons N] [--warehouse PATH] [--trial]

Results: `benchmarks/results/train_score.json` (a trial or another size: `benchmarks/results/trial/`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from benchmarks.measure import (
    CACHE,
    GIB,
    Figure,
    Run,
    Target,
    add_trial,
    cached_warehouse,
    child_report,
    run_child,
    say,
)

TRAIN_TARGET_S, SCORE_RATIO_TARGET = 300.0, 2.0


def _settings(home: str):
    from phm.core.settings import Settings

    return Settings(home=Path(home))


def _validation(home: str):
    import pandas as pd

    settings = _settings(home)
    frame = pd.read_parquet(settings.features_dir / "emergency_admission_validation.parquet")
    return settings, frame


METRICS = {
    "val_auroc": "validation AUROC",
    "oracle_auroc": "oracle AUROC (the generator's true risk)",
    "model_oracle_ratio": "model AUROC / oracle AUROC",
    "val_calibration_slope": "calibration slope",
    "val_calibration_intercept": "calibration intercept",
    "val_brier": "Brier score",
    "val_auprc": "AUPRC",
    "baseline_auroc": "logistic baseline AUROC",
    "rule_auroc": "simple rule (prior admissions) AUROC",
}


def step_train(home: str) -> tuple[float, int, dict]:
    from training.train_validate import run
    from training.config import default_config

    t0 = time.perf_counter()
    result = run(default_config("emergency_admission"), _settings(home), progress=say)
    seconds = time.perf_counter() - t0
    m = result.metrics
    say(
        f"AUROC {m['val_auroc']:.4f} (oracle {m.get('oracle_auroc', float('nan')):.4f}, ratio "
        f"{m.get('model_oracle_ratio', float('nan')):.4f}), calibration slope {m['val_calibration_slope']:.3f}, "
        f"intercept {m['val_calibration_intercept']:.3f}, baseline {m['baseline_auroc']:.4f}, rule {m['rule_auroc']:.4f}, "
        f"Brier {m['val_brier']:.4f}, AUPRC {m['val_auprc']:.4f}"
    )
    return seconds, int(m["val_n"]), {"metrics": {k: float(m[k]) for k in METRICS if k in m}}


def step_score_mlflow(home: str) -> tuple[float, int]:
    from training import registry, tracking

    settings, frame = _validation(home)
    tracking.configure(settings)
    model = registry.load("emergency_admission", "candidate")
    X = frame[model.metadata.get_input_schema().input_names()].astype("float64")
    t0 = time.perf_counter()
    out = model.predict(X)
    seconds = time.perf_counter() - t0
    assert len(out) == len(X)
    return seconds, len(X)


def step_score_raw(home: str) -> tuple[float, int]:
    from training import registry, tracking

    settings, frame = _validation(home)
    tracking.configure(settings)
    wrapped = registry.load("emergency_admission", "candidate").unwrap_python_model().model
    X = frame[list(wrapped.feature_names_in_)].astype("float64")
    booster = wrapped.booster_.booster_
    t0 = time.perf_counter()
    out = booster.predict(X.to_numpy(), num_iteration=wrapped.best_iteration_)
    seconds = time.perf_counter() - t0
    assert len(out) == len(X)
    return seconds, len(X)


STEPS = {"train": step_train, "score_mlflow": step_score_mlflow, "score_raw": step_score_raw}


def child_main() -> None:
    step, home = sys.argv[1], sys.argv[2]
    seconds, rows, *extra = STEPS[step](home)
    child_report(seconds, rows, *extra)


def record(persons: int, res: dict) -> tuple[list[Target], list[Figure]]:
    """The issue's targets (train under 5 minutes; scoring through MLflow within 2x of the raw booster, which
    is the floor: the same rows, the same trees, no schema check or calibration) and the validation figures."""
    t, m, r = res["train"], res["score_mlflow"], res["score_raw"]
    at = f"{persons:,} persons"
    targets = [
        Target(f"train (whole job), {at}", t["seconds"], TRAIN_TARGET_S, "s"),
        Target("scoring time through MLflow / raw booster", m["seconds"] / r["seconds"], SCORE_RATIO_TARGET, "x", "<="),
    ]
    figures = [
        Figure("training peak memory", t["peak_bytes"] / GIB, "GiB"),
        Figure(
            f"score {m['rows']:,} validation persons through MLflow",
            m["seconds"],
            "s",
            r["seconds"],
            "raw LightGBM booster",
        ),
        Figure("scoring through MLflow", m["rows"] / m["seconds"], "persons/s"),
        *(Figure(words, t["metrics"][k]) for k, words in METRICS.items() if k in t["metrics"]),
    ]
    return targets, figures


def main(argv: list[str] | None = None) -> None:
    parser = add_trial(
        argparse.ArgumentParser(prog="python -m benchmarks.train_score", description=__doc__.splitlines()[0])
    )
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument(
        "--warehouse",
        type=Path,
        default=None,
        help="an existing warehouse (default: the cached one of benchmarks.features_build for --persons)",
    )
    args = parser.parse_args(argv)
    run = Run("train_score", args, parser)
    warehouse = cached_warehouse(args.persons, args.warehouse)
    env = dict(os.environ)
    home = CACHE / "train_home"
    shutil.rmtree(home, ignore_errors=True)
    (home / "warehouse").mkdir(parents=True)
    (home / "warehouse" / "phm.duckdb").symlink_to(warehouse)
    res = {s: run_child("benchmarks.train_score", s, [str(home)], env) for s in STEPS}
    targets, figures = record(args.persons, res)
    run.write_results(
        {"persons": args.persons, "steps": res},
        targets,
        figures,
        note="emergency_admission; validation figures on the validation date's eligible persons.",
    )


if __name__ == "__main__":
    main()
