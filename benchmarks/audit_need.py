"""Benchmark: how often need at equal score flags a group by chance (no access barrier), and how often it finds a
real barrier (power), over several seeds of the synthetic ICS.

For each seed, two ICSs of `--persons` people are generated, loaded and built as at the validation date: one
without the barrier, one where a group (Asian on odd seeds, Black on even ones) uses hospitals `--factor` times as
often for the same need. The score audited is the generator's true probability of an emergency admission
(calibrated for the outcome in every group, so calibration cannot see the barrier). Measured in the same runs:
- false flags: audits without the barrier that flag any group by need at equal score (the audit's intervals are
  simultaneous per grouping, so chance allows at most 5% per grouping; the target is no false flag at all in
  these runs), and comparisons flagged among all judged;
- power: audits with the barrier that flag the barrier group (broad ethnicity) by need; target 80%;
- the baseline: calibration by group (predicted/observed), the check the audit had before, on the same audits:
  how often it flags the barrier group.

Results go to `benchmarks/results/audit_need.json` (a trial or other sizes: `benchmarks/results/trial/`) with the
machine's facts; each target is printed PASS or MISS.

Usage::

    .venv/bin/python -m benchmarks.audit_need [--seeds 4] [--persons 50000] [--factor 0.5] [--draws 300]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

from benchmarks.measure import Figure, Run, Target, add_trial, say

TARGET_POWER = 0.8
VALIDATION = date(2024, 4, 1)


def one_audit(root: Path, persons: int, seed: int, group: str | None, factor: float, draws: int) -> dict:
    from evaluation.fairness.audit import run_audit
    from evaluation.fairness.config import AuditConfig
    from evaluation.fairness.groups import STANDARD_GROUPINGS
    from features.sources.loader import load
    from features.synthetic.config import AccessBarrierConfig, GeneratorConfig
    from features.synthetic.generator import generate
    from phm.core.settings import Settings
    from training.oracle import oracle_audit_frame

    barrier = AccessBarrierConfig(group=group, factor=factor) if group else None
    settings = Settings(home=root / "home")
    t0 = time.perf_counter()
    generate(GeneratorConfig(persons=persons, seed=seed, access_barrier=barrier), root / "ics")
    load(settings, root / "ics")
    frame = oracle_audit_frame(settings, "emergency_admission", VALIDATION, root / "features.parquet")
    built = time.perf_counter() - t0
    t1 = time.perf_counter()
    result = run_audit(frame, STANDARD_GROUPINGS, AuditConfig(bootstrap_draws=draws, seed=seed), {"model": "truth"})
    seconds = time.perf_counter() - t1
    need = [c for n in result.need for c in n.comparisons]
    judged = [c for c in need if c.status not in ("small group", "not estimable")]
    flags = [c for c in need if c.status == "flag"]
    calibration = [
        c
        for g in result.groupings
        if g.name == "ethnicity_broad"
        for c in g.comparisons
        if c.metric == "predicted_to_observed" and c.group == group
    ]
    target = next((c for c in flags if c.grouping == "ethnicity_broad" and c.group == group), None)
    best = max(
        (c for c in need if c.grouping == "ethnicity_broad" and c.group == group),
        key=lambda c: c.ratio or 0,
        default=None,
    )
    return {
        "seed": seed,
        "barrier": group,
        "people": result.population["people"],
        "need_judged": len(judged),
        "need_flags": [f"{c.grouping}/{c.group}/{c.metric} {c.ratio:.2f}" for c in flags],
        "barrier_group_flagged_by_need": target is not None,
        "barrier_group_need_ratio": None if best is None else round(best.ratio, 3),
        "barrier_group_calibration_flagged": any(c.status == "flag" for c in calibration),
        "barrier_group_predicted_to_observed": round(calibration[0].ratio, 3) if calibration else None,
        "build_seconds": round(built, 1),
        "audit_seconds": round(seconds, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.audit_need", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--persons", type=int, default=50_000)
    parser.add_argument("--factor", type=float, default=0.5)
    parser.add_argument("--draws", type=int, default=300)
    add_trial(parser)
    args = parser.parse_args(argv)
    record = Run("audit_need", args, parser)
    runs = []
    for seed in range(1, args.seeds + 1):
        group = "Asian" if seed % 2 else "Black"
        for barrier in (None, group):
            scratch = Path(tempfile.mkdtemp(prefix="phm_need_"))
            try:
                say(f"seed {seed}, barrier {barrier or 'none'}")
                run = one_audit(scratch, args.persons, seed, barrier, args.factor, args.draws)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            say(json.dumps(run))
            runs.append(run)
    null = [r for r in runs if r["barrier"] is None]
    alt = [r for r in runs if r["barrier"] is not None]
    false_audits = sum(bool(r["need_flags"]) for r in null)
    false_comparisons = sum(len(r["need_flags"]) for r in null)
    judged = sum(r["need_judged"] for r in null)
    power = sum(r["barrier_group_flagged_by_need"] for r in alt) / len(alt)
    baseline = sum(r["barrier_group_calibration_flagged"] for r in alt) / len(alt)
    targets = [
        Target("audits without a barrier that flag any group by need", false_audits, 0, "audits", "=="),
        Target("share of barrier audits that flag the barrier group by need", power, TARGET_POWER, "", ">="),
    ]
    figures = [
        Figure("comparisons flagged by need without a barrier", false_comparisons, f"of {judged} judged"),
        Figure("share of barrier audits where calibration by group flags the group", baseline),
    ]
    for r in runs:
        print(
            f"seed {r['seed']} barrier {r['barrier'] or '-':<6} need flags {len(r['need_flags']):>2}  "
            f"barrier group need ratio {r['barrier_group_need_ratio'] or '-'}  "
            f"P/O {r['barrier_group_predicted_to_observed'] or '-'}  audit {r['audit_seconds']} s"
        )
    record.write_results(
        {"score": "generator's true probability of an emergency admission in 12 months", "runs": runs}, targets, figures
    )


if __name__ == "__main__":
    main()
