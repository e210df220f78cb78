"""Benchmark: the full fairness audit (all seven groupings, 1,000 bootstrap draws, bias report) on
1,000,000 scored persons.

The scored population is the validation population of the cached 1 M-person synthetic ICS (built and
trained by `benchmarks.train_score`), scored by its trained model, then resampled with replacement to
exactly N persons (each copy a new person): the same mix of groups, scores and outcomes at the size
the target names. Steps, each in its own child process (time and own peak memory):

* audit: group labels, exact point estimates, bootstrap, flags, coverage, HTML + JSON report;
* floor: one pandas group-by of the same rows per grouping (counts, outcome rate, mean risk) — what
  any per-group table costs at this size.

Usage::

    .venv/bin/python -m benchmarks.audit [--persons N] [--draws D] [--trial]

Results: `benchmarks/results/audit.json` (a trial or another size: `benchmarks/results/trial/`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from benchmarks.measure import CACHE, GIB, Figure, Run, Target, add_trial, child_report, run_child, say

TARGET_S = 120.0
SCORES = CACHE / "audit_scores_{n}.parquet"


def step_prepare(persons: str, out: str) -> tuple[float, int]:
    import numpy as np
    import pandas as pd

    from evaluation.fairness.groups import audit_frame
    from phm.core.settings import Settings
    from training import registry, tracking

    home = CACHE / "train_home"
    if not (home / "features" / "emergency_admission_validation.parquet").exists():
        sys.exit(f"{home} has no trained model: run `python -m benchmarks.train_score` first (1 M persons)")
    settings = Settings(home=home)
    tracking.configure(settings)
    frame = pd.read_parquet(settings.features_dir / "emergency_admission_validation.parquet")
    frame = frame[frame.label_emergency_12m.notna()].reset_index(drop=True)
    model = registry.load("emergency_admission", "candidate")
    names = model.metadata.get_input_schema().input_names()
    t0 = time.perf_counter()
    risk = model.predict(frame[names].astype("float64"))["risk"].to_numpy()
    scored = audit_frame(frame, "label_emergency_12m", risk)
    n = int(persons)
    pick = np.random.default_rng(1).integers(0, len(scored), n)
    big = scored.iloc[pick].reset_index(drop=True)
    big["person_id"] = np.arange(n, dtype=np.int64)
    big.to_parquet(out, index=False)
    say(f"{len(scored):,} validation persons scored and resampled to {n:,}")
    return time.perf_counter() - t0, n


def step_audit(path: str, draws: str) -> tuple[float, int]:
    import pandas as pd

    from evaluation.fairness.audit import run_audit
    from evaluation.fairness.config import AuditConfig
    from evaluation.fairness.groups import STANDARD_COVERAGE, STANDARD_GROUPINGS, coverage_descriptions, standard_labels
    from serving.governance.model_audit import write_report

    frame = pd.read_parquet(path)
    t0 = time.perf_counter()
    labelled = standard_labels(frame)
    result = run_audit(
        labelled,
        STANDARD_GROUPINGS,
        AuditConfig(bootstrap_draws=int(draws)),
        {"model": "benchmark"},
        coverage=STANDARD_COVERAGE,
        coverage_descriptions=coverage_descriptions(labelled, STANDARD_COVERAGE),
        progress=say,
    )
    write_report(result, Path(path).parent / "audit_report")
    seconds = time.perf_counter() - t0
    say(f"{len(result.flags)} flag(s), {len(result.uncertain)} uncertain")
    return seconds, len(frame)


def step_floor(path: str, _draws: str) -> tuple[float, int]:
    import pandas as pd

    from evaluation.fairness.groups import STANDARD_GROUPINGS, standard_labels

    frame = pd.read_parquet(path)
    t0 = time.perf_counter()
    labelled = standard_labels(frame)
    for g in STANDARD_GROUPINGS:
        labelled.groupby(g.column, observed=True).agg(
            n=("outcome", "size"), rate=("outcome", "mean"), risk=("risk", "mean")
        )
    return time.perf_counter() - t0, len(frame)


STEPS = {"prepare": step_prepare, "audit": step_audit, "floor": step_floor}


def child_main() -> None:
    step, a, b = sys.argv[1], sys.argv[2], sys.argv[3]
    seconds, rows = STEPS[step](a, b)
    child_report(seconds, rows)


def record(persons: int, draws: int, a: dict, f: dict) -> tuple[list[Target], list[Figure]]:
    """The issue's target (the full audit of 1 M scored persons, 1,000 draws, under 2 minutes) and the audit beside
    its floor (one pandas group-by per grouping of the same rows: any per-group table costs that much)."""
    targets = [Target(f"full audit, {persons:,} persons, {draws:,} draws", a["seconds"], TARGET_S, "s")]
    figures = [
        Figure(
            "full audit (labels, metrics, bootstrap, report)",
            a["seconds"],
            "s",
            f["seconds"],
            "one pandas group-by per grouping",
        ),
        Figure("audit peak memory", a["peak_bytes"] / GIB, "GiB"),
    ]
    return targets, figures


def main(argv: list[str] | None = None) -> None:
    parser = add_trial(argparse.ArgumentParser(prog="python -m benchmarks.audit", description=__doc__.splitlines()[0]))
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--draws", type=int, default=1_000)
    args = parser.parse_args(argv)
    run = Run("audit", args, parser)
    env = dict(os.environ)
    scores = Path(str(SCORES).format(n=args.persons))
    if not scores.exists():
        run_child("benchmarks.audit", "prepare", [str(args.persons), str(scores)], env)
    a = run_child("benchmarks.audit", "audit", [str(scores), str(args.draws)], env)
    f = run_child("benchmarks.audit", "floor", [str(scores), str(args.draws)], env)
    targets, figures = record(args.persons, args.draws, a, f)
    run.write_results(
        {"persons": args.persons, "draws": args.draws, "steps": {"audit": a, "floor": f}},
        targets,
        figures,
        note="Seven groupings; scores of the model trained by benchmarks.train_score, "
        "resampled with replacement to the size named.",
    )


if __name__ == "__main__":
    main()
