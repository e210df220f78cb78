"""One programme evaluation: panel, matching, balance, estimates for each outcome and by group."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import duckdb
import pandas as pd

from evaluation.programme.crossover import crossed_events
from evaluation.programme.discontinuity import panel_discontinuity
from evaluation.programme.estimators import (
    TWO_WAY,
    before_after,
    bootstrap_sums,
    by_group,
    difference_in_differences,
    difference_in_differences_not_now,
    standardised_differences,
)
from evaluation.programme.matching import CalibrationError, Reweigh, calibrate, match
from evaluation.programme.panel import COVARIATES, OUTCOMES, PROPENSITY_TERMS, build_panel
from phm.core.timing import Stages

EXACT = ["male"]
GROUPS = {
    "ethnic_group": "ethnicity (broad group)",
    "deprivation_quintile": "deprivation (IMD quintile, 1 most deprived)",
}


def evaluate_programme(
    con: duckdb.DuckDBPyConnection,
    enrolment: pd.DataFrame,
    *,
    draws: int = 200,
    k: int = 5,
    caliper: float = 0.2,
    seed: int = 0,
    end: date | None = None,
    keep_matched: bool = False,
    cutoff: tuple[pd.DataFrame, float, date] | None = None,
    stages: Stages | None = None,
) -> dict:
    """Every estimate of the programme's effect, as plain numbers (no person-level rows): enrolled, matched and
    unmatched counts, the balance table before and after matching, and per outcome the naive before-after and
    the matched difference-in-differences (with bootstrap intervals), overall and by ethnicity and deprivation.
    `keep_matched` adds `matched_enrolled` (pseudonym and enrolment month of each matched enrolled person) for
    checks against ground truth; it is never released (`report.release` drops it). `cutoff` (scores with columns
    person_id and score, the cut-off, the month the rule was applied) adds a regression-discontinuity estimate.
    `stages` (if given) records each stage's time (panel, matching, balancing, estimates, discontinuity)."""
    stages = stages or Stages()
    panel = build_panel(con, enrolment, end)
    stages.done("panel")
    if not (panel["treated"] == 1).any():
        raise ValueError("no enrolled person has 12 months of follow-up within the data yet")
    matched = match(panel, PROPENSITY_TERMS, EXACT, k=k, caliper=caliper, seed=seed)
    # comparison people enrolled within their follow-up: their events after their own enrolment, apart
    matched = replace(matched, panel=crossed_events(con, matched.panel, enrolment, end))
    stages.done("matching")
    try:
        final, calibrated = calibrate(matched, COVARIATES), True
    except CalibrationError:
        final, calibrated = matched, False
    stages.done("balancing")
    mp = final.panel
    before = standardised_differences(panel, COVARIATES)
    only = standardised_differences(matched.panel, COVARIATES, weight="weight", reference=panel)
    after = standardised_differences(mp, COVARIATES, weight="weight", reference=panel)
    treated = mp[mp["treated"] == 1].set_index("set_id")
    result = {
        "enrolled_in_data": int(len(enrolment)),
        "enrolled_with_follow_up": matched.enrolled,
        "matched": int(len(treated)),
        "unmatched": matched.unmatched,
        "comparison_people": int(mp.loc[mp["treated"] == 0, "person_id"].nunique()),
        "comparison_weight_enrolled_within_follow_up": float(
            mp.loc[mp["treated"] == 0, "weight"].mul(mp.loc[mp["treated"] == 0, "crosses"]).sum()
            / mp.loc[mp["treated"] == 0, "weight"].sum()
        ),
        "cohorts": sorted(str(c.date()) if hasattr(c, "date") else str(c) for c in panel["cohort"].unique()),
        "method": {
            "matching": "propensity score (logistic) nearest neighbours with replacement within the caliper, "
            "exact on enrolment month and sex; then the comparison "
            "weights entropy-balanced to the enrolled group's covariate means",
            "crossover": "a comparison person enrolled within their follow-up keeps their 12 months; their events "
            "after their own enrolment are scaled back by the estimated relative effect (g-estimation under a "
            "constant relative effect), so the difference in differences estimates enrolment against no enrolment "
            "(difference_in_differences_not_now: the same without that correction)",
            "calibrated": calibrated,
            "k": k,
            "caliper_sd": caliper,
            "bootstrap_draws": draws,
            "covariates": COVARIATES,
        },
        "balance": [
            {"covariate": c, "smd_before": before[c], "smd_matched": only[c], "smd_after": after[c]} for c in COVARIATES
        ],
        "max_abs_smd_matched": max(abs(v) for v in only.values()),
        "max_abs_smd_after": max(abs(v) for v in after.values()),
        "outcomes": {},
        "groups": {},
    }
    # the interval re-does the entropy balancing in every resample (the weights are estimated too)
    reweigh = Reweigh(mp, matched.panel["weight"].to_numpy(float), COVARIATES, calibrated)
    sums = bootstrap_sums(mp, OUTCOMES, reweigh, draws, seed) if draws > 0 else {}
    # people enrolled in one month share its selection and calendar: the interval is two-way clustered (person and
    # enrolment month), from month and person-month resamples of the same bootstrap
    schemes = TWO_WAY if draws > 0 and mp["cohort"].nunique() > 1 else ()
    extra = [bootstrap_sums(mp, OUTCOMES, reweigh, draws, seed, scheme) for scheme in schemes]
    result["method"]["bootstrap"] = (
        "Poisson bootstrap over people, the entropy balancing re-done in each resample"
        + (
            "; the interval widened to the variance two-way clustered by person and enrolment month (Cameron, "
            "Gelbach and Miller; from resamples of months and of person-months, never narrower than by person)"
            if schemes
            else ""
        )
        + (
            f" ({reweigh.failed} of {draws * (1 + len(schemes))} resamples could not be balanced and were left out)"
            if reweigh.failed
            else ""
        )
    )
    for outcome in OUTCOMES:
        t = treated
        result["outcomes"][outcome] = {
            "enrolled_rate_before": float(t[f"pre_{outcome}"].sum() / t["pre_years"].sum()),
            "enrolled_rate_after": float(t[f"post_{outcome}"].sum() / t["post_years"].sum()),
            "before_after": before_after(mp, outcome, draws, seed).as_dict(),
            "difference_in_differences": difference_in_differences(
                mp, outcome, draws, seed, sums.get(outcome), tuple(e[outcome] for e in extra) or None
            ).as_dict(),
            "difference_in_differences_matched_only": difference_in_differences(
                matched.panel, outcome, draws, seed
            ).as_dict(),
            "difference_in_differences_not_now": difference_in_differences_not_now(mp, outcome, draws, seed).as_dict(),
        }
    for col, label in GROUPS.items():
        groups = by_group(mp, treated[col], "admissions", draws, seed)
        result["groups"][col] = {
            "label": label,
            "outcome": "admissions",
            "rows": [{"group": g, "enrolled": n, **e.as_dict()} for g, (n, e) in groups.items()],
        }
    # the matched enrolled people's groups, one row a person: released only through the disclosure policy's
    # linked-table protection (report.release), never as rows
    result["enrolled_groups"] = treated[list(GROUPS)].astype(str).reset_index(drop=True)
    stages.done("estimates")
    if cutoff is not None:
        scores, value, month = cutoff
        result["discontinuity"] = panel_discontinuity(panel, scores, value, month, OUTCOMES, draws=draws, seed=seed)
        stages.done("discontinuity")
    if keep_matched:
        result["matched_enrolled"] = treated[["person_id", "cohort"]].reset_index(drop=True)
    return result
