"""Programme-evaluation estimators pinned on small hand-made cohorts whose answers are worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evaluation.disclosure import Policy
from evaluation.programme.estimators import (
    before_after,
    bootstrap_sums,
    by_group,
    difference_in_differences,
    standardised_differences,
)
from evaluation.programme.matching import Reweigh, calibrate, match
from evaluation.programme.report import release


def _row(set_id, treated, weight, pre, post, pre_years=1.0, post_years=1.0, **extra):
    return {
        "set_id": set_id,
        "treated": treated,
        "weight": weight,
        "pre_admissions": pre,
        "post_admissions": post,
        "pre_years": pre_years,
        "post_years": post_years,
        **extra,
    }


# two match sets; the enrolled go from 4 admissions in 2 person-years to 2 (rate 2 -> 1); their comparisons
# (weights 1/2 each) from 2 in 1 weighted person-year to 1.5 (rate 2 -> 1.5)
PANEL = pd.DataFrame(
    [
        _row(1, 1, 1.0, 3, 1),
        _row(1, 0, 0.5, 3, 2),
        _row(1, 0, 0.5, 1, 1),
        _row(2, 1, 1.0, 1, 1),
        _row(2, 0, 0.5, 2, 2),
        _row(2, 0, 0.5, 2, 1),
    ]
)


def test_naive_before_after_uses_the_enrolled_alone() -> None:
    e = before_after(PANEL, "admissions")
    assert e.difference == pytest.approx(-1.0)
    assert e.relative == pytest.approx(-0.5)


def test_difference_in_differences_subtracts_the_comparison_change() -> None:
    e = difference_in_differences(PANEL, "admissions")
    # (1 - 2) - (1.5 - 2) = -0.5 per person-year; counterfactual 1 + 0.5 = 1.5, so -0.5 / 1.5
    assert e.difference == pytest.approx(-0.5)
    assert e.relative == pytest.approx(-1 / 3)


def test_person_time_weights_the_rates() -> None:
    panel = PANEL.copy()
    panel.loc[0, "post_years"] = 0.5  # the first enrolled person died half-way: 2 admissions in 1.5 years
    e = difference_in_differences(panel, "admissions")
    assert e.difference == pytest.approx((2 / 1.5 - 2) - (1.5 - 2))


def test_bootstrap_intervals_bracket_the_estimate_and_are_reproducible() -> None:
    rng = np.random.default_rng(3)
    rows = []
    for s in range(200):
        pre = rng.poisson(2)
        rows += [
            _row(s, 1, 1.0, pre, rng.poisson(1.5), person_id=s),
            _row(s, 0, 1.0, pre, rng.poisson(2.0), person_id=1000 + s),
        ]
    panel = pd.DataFrame(rows)
    a = difference_in_differences(panel, "admissions", draws=300, seed=1)
    b = difference_in_differences(panel, "admissions", draws=300, seed=1)
    assert a == b
    lo, hi = a.difference_ci
    assert lo < a.difference < hi
    assert lo < -0.5 < hi  # the true difference (1.5 - 2.0 per person-year) is covered
    assert hi - lo < 1.2  # 200 sets of Poisson counts: the interval is informative


def test_effect_by_group_uses_each_enrolled_persons_group() -> None:
    groups = pd.Series({1: "White", 2: "Asian"})
    out = by_group(PANEL, groups, "admissions")
    assert out["White"][0] == 1 and out["Asian"][0] == 1
    # set 1: enrolled 3 -> 1, comparison (3 + 1)/2 -> (2 + 1)/2: (-2) - (-0.5)
    assert out["White"][1].difference == pytest.approx(-1.5)
    # set 2: enrolled 1 -> 1, comparison 2 -> 1.5: 0 - (-0.5)
    assert out["Asian"][1].difference == pytest.approx(0.5)


def test_standardised_mean_difference_by_hand() -> None:
    frame = pd.DataFrame({"treated": [1, 1, 0, 0], "x": [2.0, 4.0, 1.0, 3.0], "weight": [1, 1, 1, 1]})
    # means 3 and 2; variances (sample) 2 and 2 -> pooled sd sqrt(2)
    assert standardised_differences(frame, ["x"])["x"] == pytest.approx(1 / np.sqrt(2))
    weighted = frame.assign(weight=[1.0, 1.0, 0.0, 1.0])  # comparison mean now 3
    assert standardised_differences(weighted, ["x"], weight="weight", reference=frame)["x"] == pytest.approx(0.0)


def _matching_frame() -> pd.DataFrame:
    # one enrolment month; x drives enrolment. Enrolled at x = 0 and x = 1 (and a third at x = 9, far from anyone)
    rows = [{"cohort": 1, "person_id": i, "treated": 1, "x": x, "male": 0} for i, x in enumerate([0.0, 1.0, 9.0])]
    rows += [
        {"cohort": 1, "person_id": 10 + i, "treated": 0, "x": x, "male": 0}
        for i, x in enumerate([0.02, 0.98, -3.0, -2.5, -2.0, -1.5, -3.5, -4.0])
    ]
    frame = pd.DataFrame(rows)
    for col in ("pre_admissions", "post_admissions"):
        frame[col] = 1
    frame["pre_years"] = frame["post_years"] = 1.0
    return frame


def test_matching_picks_the_nearest_within_the_caliper_and_drops_the_rest() -> None:
    m = match(_matching_frame(), ["x"], exact=["male"], k=1, caliper=0.2)
    pairs = {int(s): sorted(g.loc[g["treated"] == 0, "person_id"]) for s, g in m.panel.groupby("set_id")}
    assert m.enrolled == 3 and m.unmatched == 1  # x = 9 has nobody near it
    assert pairs == {0: [10], 1: [11]}
    assert (m.panel.loc[m.panel["treated"] == 0, "weight"] == 1.0).all()


def test_matching_is_exact_on_the_strata() -> None:
    frame = _matching_frame()
    frame.loc[frame["person_id"] == 10, "male"] = 1  # the nearest to x = 0 is now of the other sex
    m = match(frame, ["x"], exact=["male"], k=1, caliper=1.0)
    pairs = {int(s): sorted(g.loc[g["treated"] == 0, "person_id"]) for s, g in m.panel.groupby("set_id")}
    assert 10 not in pairs.get(0, [])


def test_calibration_equalises_means_and_keeps_the_total_weight() -> None:
    rng = np.random.default_rng(0)
    t = pd.DataFrame(
        {"cohort": 1, "person_id": range(50), "treated": 1, "x": rng.normal(1.0, 1, 50), "male": rng.integers(0, 2, 50)}
    )
    c = pd.DataFrame(
        {
            "cohort": 1,
            "person_id": range(100, 400),
            "treated": 0,
            "x": rng.normal(0.6, 1, 300),
            "male": rng.integers(0, 2, 300),
        }
    )
    frame = pd.concat([t, c], ignore_index=True)
    frame["pre_admissions"] = frame["post_admissions"] = 0
    frame["pre_years"] = frame["post_years"] = 1.0
    m = match(frame, ["x"], exact=[], k=5, caliper=5.0)
    cal = calibrate(m, ["x", "male"])
    after = standardised_differences(cal.panel, ["x", "male"], weight="weight", reference=frame)
    assert max(abs(v) for v in after.values()) < 1e-4
    controls = lambda p: p.loc[p["treated"] == 0, "weight"].sum()  # noqa: E731
    assert controls(cal.panel) == pytest.approx(controls(m.panel))


def test_release_hides_small_groups_and_rounds_counts() -> None:
    est = {"difference": -0.5, "relative": -0.25, "difference_ci": [-0.9, -0.1], "relative_ci": [-0.4, -0.05]}
    result = {
        "enrolled_in_data": 103,
        "enrolled_with_follow_up": 98,
        "matched": 96,
        "unmatched": 2,
        "comparison_people": 301,
        "cohorts": ["2023-04-01"],
        "method": {},
        "balance": [],
        "max_abs_smd_matched": 0.12,
        "max_abs_smd_after": 0.0,
        "outcomes": {"admissions": {"enrolled_rate_before": 2.0, "before_after": est}},
        "groups": {
            "ethnic_group": {
                "label": "ethnicity",
                "outcome": "admissions",
                "rows": [{"group": "Black", "enrolled": 5, **est}, {"group": "White", "enrolled": 80, **est}],
            }
        },
        "matched_enrolled": pd.DataFrame({"person_id": [1]}),
    }
    out = release(result, Policy())
    # 2 unmatched were 98 with follow-up less 96 matched, and 5 without follow-up 103 less 98: the linked counts
    # are protected together, so neither small count is the difference of shown ones
    assert out["counts"] == {
        "enrolled_in_data": 105,
        "enrolled_with_follow_up": None,
        "matched": None,
        "unmatched": None,
        "comparison_people": 300,
    }
    many = release(
        {**result, "enrolled_in_data": 500, "enrolled_with_follow_up": 497, "matched": 400, "unmatched": 97}, Policy()
    )
    assert many["counts"] == {
        "enrolled_in_data": 500,
        "enrolled_with_follow_up": None,  # else 3 without follow-up = 500 - 497
        "matched": 400,
        "unmatched": None,  # else the 497 with follow-up = 400 + 97
        "comparison_people": 300,
    }
    shown = release(
        {**result, "enrolled_in_data": 500, "enrolled_with_follow_up": 480, "matched": 400, "unmatched": 80}, Policy()
    )
    assert shown["counts"]["enrolled_with_follow_up"] == 480 and shown["counts"]["unmatched"] == 80
    rows = {r["group"]: r for r in out["groups"]["ethnic_group"]["rows"]}
    assert rows["Black"]["enrolled"] is None and rows["Black"]["relative"] is None
    assert rows["White"]["enrolled"] == 80 and rows["White"]["relative"] == -0.25
    assert "matched_enrolled" not in out


def test_release_protects_groups_and_total_together() -> None:
    est = {"difference": -0.5, "relative": -0.25, "difference_ci": [-0.9, -0.1], "relative_ci": [-0.4, -0.05]}
    groups = pd.DataFrame(
        {
            "ethnic_group": ["White"] * 80 + ["Asian"] * 20 + ["Black"] * 5,
            "deprivation_quintile": ["1"] * 50 + ["2"] * 55,
        }
    )
    rows = [{"group": g, "enrolled": n, **est} for g, n in (("Asian", 20), ("Black", 5), ("White", 80))]
    result = {
        "enrolled_in_data": 105,
        "enrolled_with_follow_up": 105,
        "matched": 105,
        "unmatched": 0,
        "comparison_people": 300,
        "cohorts": [],
        "method": {},
        "balance": [],
        "max_abs_smd_matched": 0.1,
        "max_abs_smd_after": 0.0,
        "outcomes": {},
        "groups": {
            "ethnic_group": {"label": "ethnicity", "outcome": "admissions", "rows": rows},
            "deprivation_quintile": {"label": "deprivation", "outcome": "admissions", "rows": []},
        },
        "enrolled_groups": groups,
    }
    out = release(result, Policy())
    shown = {r["group"]: r["enrolled"] for r in out["groups"]["ethnic_group"]["rows"]}
    assert shown["Black"] is None
    # with the total shown, one hidden group would be the total minus the others: a second cell is hidden too
    assert out["counts"]["matched"] is None or sum(v is None for v in shown.values()) >= 2
    assert "enrolled_groups" not in out


def test_the_bootstrap_redoes_the_balancing_in_each_resample() -> None:
    rng = np.random.default_rng(0)
    t = pd.DataFrame({"cohort": 1, "person_id": range(60), "treated": 1, "x": rng.normal(1.0, 1, 60)})
    c = pd.DataFrame({"cohort": 1, "person_id": range(100, 400), "treated": 0, "x": rng.normal(0.6, 1, 300)})
    frame = pd.concat([t, c], ignore_index=True)
    frame["male"] = 0
    frame["pre_admissions"] = rng.poisson(2 + frame["x"].clip(0))
    frame["post_admissions"] = rng.poisson(2 + frame["x"].clip(0))
    frame["pre_years"] = frame["post_years"] = 1.0
    m = match(frame, ["x"], exact=[], k=5, caliper=5.0)
    cal = calibrate(m, ["x"])
    matching = m.panel["weight"].to_numpy(float)
    # without balancing, the re-derived weights are the fixed ones: the very draws of the plain bootstrap
    fixed = bootstrap_sums(m.panel, ["admissions"], Reweigh(m.panel, matching, ["x"], calibrated=False), 50, 7)
    a = difference_in_differences(m.panel, "admissions", sums=fixed["admissions"])
    b = difference_in_differences(m.panel, "admissions", draws=50, seed=7)
    assert a.difference == b.difference and a.difference_ci == pytest.approx(b.difference_ci, rel=1e-12)
    assert a.relative_ci == pytest.approx(b.relative_ci, rel=1e-12)
    # with balancing, every resample's comparison weights meet that resample's enrolled mean of x
    weigh = Reweigh(cal.panel, matching, ["x"], calibrated=True)
    units = pd.factorize(cal.panel["person_id"])[0]
    counts = np.random.default_rng(7).poisson(1.0, size=(5, units.max() + 1))
    x, treated = cal.panel["x"].to_numpy(), cal.panel["treated"].to_numpy() == 1
    for row in counts:
        mult = row[units].astype(float)
        w = weigh(mult)
        assert np.average(x[~treated], weights=w[~treated]) == pytest.approx(
            np.average(x[treated], weights=mult[treated]), abs=1e-3
        )
    e = difference_in_differences(
        cal.panel, "admissions", sums=bootstrap_sums(cal.panel, ["admissions"], weigh, 200, 7)["admissions"]
    )
    assert e.difference_ci[0] < e.difference < e.difference_ci[1] and weigh.failed == 0
