"""Benchmark: programme evaluation against a known answer.

For each of `--runs` seeds, two synthetic ICSs of `--persons` people are generated, one whose programme
multiplies the enrolled's emergency-admission hazard by `--factor` (0.75: a 25% reduction) and one with no
effect (1.0); each is loaded through the real loader into its own warehouse and evaluated exactly as
`phm evaluate programme --synthetic` does. The truth is the generator's: the enrolled's admissions with and
without the programme (common random numbers) over each matched enrolled person's 12 months after enrolment.

Printed and saved (benchmarks/results/evaluation.json, with the machine's facts), with PASS or MISS:
- the matched difference-in-differences estimate within 5 points of the true relative effect on average;
- its 95% interval covering the truth in at least 85% of effect runs (17 of 20 in the issue);
- with no effect, the interval including zero in at least 90% of runs (18 of 20);
- every standardised mean difference under 0.1 (after the final weighting; after matching alone printed beside);
- the naive before-after estimate and its bias printed beside, as the floor a naive analysis would give;
- bed-days: the DiD estimate against the true relative effect on bed-days (the stays of prevented admissions
  drawn from the generator's length-of-stay model), and by broad ethnic group and for Core20 areas (deprivation quintile 1) the mean estimate beside the mean
  truth (`--group-factor core20=1.0` gives a group its own true factor, so the programme can widen a gap);
- the regression-discontinuity estimate where enrolment followed the programme's first-month score cut-off
  (relative: the fuzzy effect over the untreated level at the cut-off; its interval is the effect's bootstrap
  interval over that level), its mean error against the truth and how often its interval covers it (figures: the
  issue sets no target for it, and few people lie near one month's cut-off).

- crossover: the DiD without its correction for comparison people enrolled within their own follow-up (enrol now
  against not now, diluted towards no effect) and its mean error beside, and the share of comparison weight so
  enrolled;
- calibration: per arm, the sd of the DiD error over the runs beside the mean sd its intervals imply, the mean and
  sd of the per-run z-scores (error over implied sd), and the
  no-effect arm's mean estimate with its standard error, so that a coverage count just under its target can be
  told apart from chance (a well-calibrated 95% interval includes zero in 18 or more of 20 runs only ~92% of
  the time).

The issue asks for 20 + 20 ICSs of 50,000 people; `--runs` and `--persons` scale it down on a busy machine.

Usage::

    .venv/bin/python -m benchmarks.evaluation [--runs 20] [--persons 50000] [--draws 200] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from benchmarks.measure import CACHE, Figure, Run, Target, add_trial, say

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "evaluation.json"


def truth_for(folder: Path, matched: pd.DataFrame, key: bytes) -> dict:
    """True relative effects on the matched enrolled over their 12 months from enrolment: admissions, bed-days and
    admissions by broad ethnic group."""
    from features.sources.pseudonymise import Pseudonymiser

    out = pq.read_table(folder / "truth" / "programme_outcomes.parquet").to_pandas()
    out["person_id"] = Pseudonymiser(key).mapping(out["nhs_number"]).column("person_id").to_numpy()
    j = out.drop(columns="nhs_number").merge(matched, on="person_id")
    month = pd.to_datetime(j["month"])
    j = j[(month >= j["cohort"]) & (month < j["cohort"] + pd.DateOffset(months=12))]
    rel = lambda f: float(f["admissions"].sum() / f["admissions_counterfactual"].sum() - 1)  # noqa: E731
    return {
        "admissions": rel(j),
        "bed_days": float(j["bed_days"].sum() / j["bed_days_counterfactual"].sum() - 1),
        "by_ethnic_group": {g: rel(f) for g, f in j.groupby("ethnic_group") if f["admissions_counterfactual"].sum()},
        "core20": {
            ("Core20" if c else "not Core20"): rel(f)
            for c, f in j.groupby("core20")
            if f["admissions_counterfactual"].sum()
        },
    }


class Checkpoint:
    """Finished runs kept on disk (one JSON line each, with the arguments they were made with), so that a run of
    many ICSs cut short (a busy shared machine, a deadline) resumes where it stopped instead of starting again;
    runs made with other arguments are ignored. Cleared once the results file is written."""

    def __init__(self, path: Path, args: dict):
        self.path, self.args = path, args
        self.runs: dict[tuple[int, float], dict] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill mid-write
                if row.get("args") == args:
                    self.runs[(int(row["run"]["seed"]), float(row["run"]["factor"]))] = row["run"]

    def get(self, seed: int, factor: float) -> dict | None:
        return self.runs.get((seed, float(factor)))

    def add(self, run: dict) -> dict:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        torn = self.path.exists() and self.path.read_bytes()[-1:] not in (b"", b"\n")  # a line cut short by a kill
        with open(self.path, "a") as fh:
            fh.write(("\n" if torn else "") + json.dumps({"args": self.args, "run": run}) + "\n")
        self.runs[(int(run["seed"]), float(run["factor"]))] = run
        return run

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def one_run(
    seed: int, persons: int, factor: float, draws: int, work: Path, group_factors: dict[str, float] | None = None
) -> dict:
    from evaluation.programme.enrolment import synthetic_cutoff, synthetic_enrolment
    from evaluation.programme.evaluate import evaluate_programme
    from features.sources.loader import load
    from features.sources.pseudonymise import resolve_key
    from features.synthetic.config import GeneratorConfig, ProgrammeConfig
    from features.synthetic.generator import generate
    from phm.core.settings import Settings

    import duckdb

    t0 = time.perf_counter()
    folder, home = work / "data", work / "home"
    for p in (folder, home):
        shutil.rmtree(p, ignore_errors=True)
    cfg = GeneratorConfig(
        persons=persons,
        seed=seed,
        programme=ProgrammeConfig(
            start=date(2023, 4, 1),
            capacity=max(5, persons // 800),
            uptake=0.7,
            top_share=0.05,
            factor=factor,
            group_factors=group_factors if factor != 1.0 and group_factors else {},
        ),
    )
    generate(cfg, folder)
    settings = Settings(home=home)
    load(settings, folder)
    t1 = time.perf_counter()
    enrolment = synthetic_enrolment(settings, folder)
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    result = evaluate_programme(
        con, enrolment, draws=draws, seed=seed, keep_matched=True, cutoff=synthetic_cutoff(settings, folder)
    )
    con.close()
    t2 = time.perf_counter()
    truths = truth_for(folder, result["matched_enrolled"], resolve_key(settings, synthetic=True)[0])
    truth = truths["admissions"]
    bed = result["outcomes"]["bed_days"]["difference_in_differences"]
    groups = {
        r["group"]: {
            "did": r["relative"],
            "did_ci": r["relative_ci"],
            "enrolled": r["enrolled"],
            "truth": truths["by_ethnic_group"].get(r["group"]),
        }
        for r in result["groups"]["ethnic_group"]["rows"]
    }
    # deprivation quintile 1 is IMD deciles 1-2: the Core20 areas the truth names
    quintiles = result["groups"]["deprivation_quintile"]["rows"]
    core = [r for r in quintiles if str(r["group"]) == "1"]
    if core:
        groups["Core20"] = {
            "did": core[0]["relative"],
            "did_ci": core[0]["relative_ci"],
            "enrolled": core[0]["enrolled"],
            "truth": truths["core20"].get("Core20"),
        }
    adm = result["outcomes"]["admissions"]
    did, naive = adm["difference_in_differences"], adm["before_after"]
    rd = result.get("discontinuity", {}).get("admissions", {})
    base = rd.get("outcome_below")
    rd_rel = rd["effect"] / base if rd.get("effect") is not None and base else None
    rd_ci = [v / base for v in rd["effect_ci"]] if rd_rel is not None else None
    return {
        "bed_days_truth": truths["bed_days"],
        "bed_days_did": bed["relative"],
        "bed_days_did_ci": bed["relative_ci"],
        "by_group": groups,
        "rd_relative": rd_rel,
        "rd_relative_ci": rd_ci,
        "rd_error": rd.get("error"),
        "rd_people": result.get("discontinuity", {}).get("people_scored"),
        "seed": seed,
        "factor": factor,
        "truth": truth,
        "enrolled": result["enrolled_with_follow_up"],
        "matched": result["matched"],
        "did": did["relative"],
        "did_ci": did["relative_ci"],
        "did_matched_only": adm["difference_in_differences_matched_only"]["relative"],
        "did_not_now": adm["difference_in_differences_not_now"]["relative"],
        "comparison_weight_enrolled_within_follow_up": result["comparison_weight_enrolled_within_follow_up"],
        "naive": naive["relative"],
        "max_smd_matched": result["max_abs_smd_matched"],
        "max_smd_after": result["max_abs_smd_after"],
        "calibrated": result["method"]["calibrated"],
        "seconds_generate_load": round(t1 - t0, 1),
        "seconds_evaluate": round(t2 - t1, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="Seeds per arm (the issue's 20).")
    parser.add_argument("--persons", type=int, default=50_000, help="People per ICS (the issue's 50,000).")
    parser.add_argument("--factor", type=float, default=0.75, help="True hazard factor of the effect arm.")
    parser.add_argument("--draws", type=int, default=200, help="Bootstrap draws per evaluation.")
    parser.add_argument("--first-seed", type=int, default=101)
    parser.add_argument(
        "--group-factor",
        action="append",
        default=[],
        metavar="GROUP=F",
        help="A different true factor for a group of the effect arm (repeat), e.g. core20=1.0.",
    )
    parser.add_argument("--out", type=Path, default=None, help="Results file (default: the shared writer's).")
    add_trial(parser)
    args = parser.parse_args()
    record = Run("evaluation", args, parser, neutral=("out",), out=args.out)
    work = CACHE / "evaluation"
    groups = {g: float(f) for g, f in (x.split("=", 1) for x in args.group_factor)}
    done = Checkpoint(CACHE / "evaluation_runs.jsonl", {k: v for k, v in record.args.items() if k != "out"})
    runs = []
    for i in range(args.runs):
        for factor in (args.factor, 1.0):
            seed = args.first_seed + i
            r = done.get(seed, factor)
            if r is None:
                say(f"seed {seed}, factor {factor}")
                r = done.add(one_run(seed, args.persons, factor, args.draws, work, groups))
            else:
                say(f"seed {seed}, factor {factor}: done earlier with these arguments (checkpoint)")
            say(
                f"  truth {r['truth']:+.3f}  DiD {r['did']:+.3f} ({r['did_ci'][0]:+.3f}, {r['did_ci'][1]:+.3f})  "
                f"naive {r['naive']:+.3f}  RD {r['rd_relative'] if r['rd_relative'] is not None else float('nan'):+.3f}  max|SMD| {r['max_smd_matched']:.3f} matched, {r['max_smd_after']:.3f} after"
            )
            runs.append(r)
    shutil.rmtree(work, ignore_errors=True)
    done.clear()
    eff = [r for r in runs if r["factor"] != 1.0]
    null = [r for r in runs if r["factor"] == 1.0]
    err = np.array([r["did"] - r["truth"] for r in eff])
    naive_bias = np.array([r["naive"] - r["truth"] for r in runs])
    covered = sum(r["did_ci"][0] <= r["truth"] <= r["did_ci"][1] for r in eff)
    zero_in = sum(r["did_ci"][0] <= 0 <= r["did_ci"][1] for r in null)
    worst_smd = max(r["max_smd_after"] for r in runs)
    targets, figures = judged(runs, eff, null, err, naive_bias, covered, zero_in, worst_smd)
    print(f"{args.runs} + {args.runs} synthetic ICSs of {args.persons:,} people; true factor {args.factor}")
    record.write_results(
        {
            "summary": {
                "did_mean_error": round(float(err.mean()), 4),
                "did_mean_abs_error": round(float(np.abs(err).mean()), 4),
                "naive_mean_bias": round(float(naive_bias.mean()), 4),
                "max_smd_after_matching_only": round(max(r["max_smd_matched"] for r in runs), 4),
            },
            "runs": runs,
        },
        targets,
        figures,
        note="The issue asks 20 + 20 runs of 50,000 people.",
    )


def calibration(eff: list[dict], null: list[dict]) -> list[Figure]:
    """Whether the intervals are as wide as the estimates scatter: per arm, the spread (sd) of the DiD error over
    the runs beside the mean spread its intervals imply (width / 3.92), and the no-effect arm's mean estimate with
    its standard error over the runs. A count like 17 of 20 is noisy (a well-calibrated 95% interval includes zero
    in at least 18 of 20 runs only about 92% of the time); these say whether a miss is chance or the estimator."""
    out = []
    for name, arm in (("effect", eff), ("no-effect", null)):
        if len(arm) < 2:
            continue
        err = np.array([r["did"] - r["truth"] for r in arm])
        implied = np.array([(r["did_ci"][1] - r["did_ci"][0]) / 3.92 for r in arm])
        out.append(Figure(f"{name} runs: sd of the DiD error over the runs", float(err.std(ddof=1))))
        out.append(Figure(f"{name} runs: mean sd implied by the DiD 95% intervals", float(np.nanmean(implied))))
        z = err / implied
        out.append(Figure(f"{name} runs: mean z-score of the DiD error (error / implied sd)", float(np.mean(z))))
        out.append(
            Figure(
                f"{name} runs: sd of the z-scores (1 if the intervals are as wide as the scatter)",
                float(np.std(z, ddof=1)),
            )
        )
    crossed = [r for r in eff if r.get("did_not_now") is not None]
    if crossed:
        out.append(
            Figure(
                "effect runs: mean error of the DiD without the crossover correction (enrol now against not now)",
                float(np.mean([r["did_not_now"] - r["truth"] for r in crossed])),
            )
        )
        out.append(
            Figure(
                "mean share of the comparison weight enrolled within its own follow-up (all runs)",
                float(np.mean([r["comparison_weight_enrolled_within_follow_up"] for r in eff + null])),
            )
        )
    if len(null) >= 2:
        est = np.array([r["did"] for r in null])
        out.append(Figure("no-effect runs: mean DiD estimate (truth 0)", float(est.mean())))
        out.append(
            Figure(
                "no-effect runs: standard error of that mean over the runs", float(est.std(ddof=1) / np.sqrt(est.size))
            )
        )
    return out


def judged(
    runs: list[dict],
    eff: list[dict],
    null: list[dict],
    err: np.ndarray,
    naive_bias: np.ndarray,
    covered: int,
    zero_in: int,
    worst_smd: float,
) -> tuple[list[Target], list[Figure]]:
    """The issue's targets and the figures printed beside them."""
    targets = [
        Target("absolute mean DiD error against the true relative effect", abs(float(err.mean())), 0.05, "", "<="),
        Target("share of effect runs whose 95% interval covers the truth", covered / len(eff), 0.85, "", ">="),
        Target("share of no-effect runs whose 95% interval includes zero", zero_in / len(null), 0.9, "", ">="),
        Target("largest standardised mean difference after matching and weighting", worst_smd, 0.1),
    ]
    bed_err = [r["bed_days_did"] - r["bed_days_truth"] for r in eff]
    bed_cov = sum(r["bed_days_did_ci"][0] <= r["bed_days_truth"] <= r["bed_days_did_ci"][1] for r in eff)
    group_figures = [
        Figure("bed-days: mean DiD error against the true relative effect (effect runs)", float(np.mean(bed_err))),
        Figure("bed-days: effect runs whose DiD interval covers the truth", bed_cov),
    ]
    for g in sorted({g for r in eff for g in r["by_group"]}):
        got = [
            r["by_group"][g]
            for r in eff
            if g in r["by_group"] and r["by_group"][g]["truth"] is not None and np.isfinite(r["by_group"][g]["did"])
        ]
        if got:
            group_figures.append(
                Figure(
                    f"{g}: mean DiD estimate over {len(got)} effect runs "
                    f"({sum(x['enrolled'] for x in got) / len(got):.0f} matched enrolled a run)",
                    float(np.mean([x["did"] for x in got])),
                )
            )
            group_figures.append(Figure(f"{g}: mean true relative effect", float(np.mean([x["truth"] for x in got]))))
    rd = [r for r in eff if r.get("rd_relative") is not None]
    rd_figures = (
        [
            Figure(
                f"regression discontinuity at the first month's cut-off: mean error against the truth "
                f"({len(rd)} of {len(eff)} effect runs estimable)",
                float(np.mean([r["rd_relative"] - r["truth"] for r in rd])),
            ),
            Figure(
                "regression discontinuity: effect runs whose interval covers the truth",
                sum(r["rd_relative_ci"][0] <= r["truth"] <= r["rd_relative_ci"][1] for r in rd),
            ),
        ]
        if rd
        else []
    )
    figures = [
        *rd_figures,
        *group_figures,
        *calibration(eff, null),
        Figure("mean absolute DiD error", float(np.abs(err).mean())),
        Figure("naive before-after mean bias", float(naive_bias.mean())),
        Figure("largest SMD after matching alone", max(r["max_smd_matched"] for r in runs)),
    ]
    return targets, figures


if __name__ == "__main__":
    main()
