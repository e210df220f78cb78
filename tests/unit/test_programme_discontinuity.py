"""Regression discontinuity on hand-made data with known jumps: exact on noise-free lines, the truth inside the
interval with noise, the fuzzy ratio recovering the effect of enrolment, and the IK bandwidth's invariances."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.programme.discontinuity import (
    DiscontinuityError,
    ik_bandwidth,
    local_linear_jump,
    regression_discontinuity,
    triangular,
)


def test_triangular_kernel() -> None:
    w = triangular(np.array([-2.0, -0.5, 0.0, 0.25, 1.0, 3.0]), 0.0, 1.0)
    assert w.tolist() == [0.0, 0.5, 1.0, 0.75, 0.0, 0.0]


def test_noise_free_lines_give_the_exact_jump() -> None:
    x = np.linspace(-1, 1, 201)
    y = 1.0 + 0.5 * x + 2.0 * (x >= 0.2) - 0.7 * x * (x >= 0.2)  # different slopes either side
    jump, below = local_linear_jump(x, y, 0.2, 0.5)
    assert jump == pytest.approx(2.0 - 0.7 * 0.2, abs=1e-9)
    assert below == pytest.approx(1.1, abs=1e-9)


def _noisy(jump: float, n: int = 6000, seed: int = 4):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, n)
    y = 1 + 0.8 * x + 0.6 * x**2 + jump * (x >= 0) + rng.normal(0, 0.5, n)
    return x, y


def test_sharp_jump_is_found_and_no_jump_is_not() -> None:
    x, y = _noisy(0.5)
    rd = regression_discontinuity(x, y, (x >= 0).astype(float), 0.0, draws=300, seed=1)
    assert rd.bandwidth_rule == "Imbens-Kalyanaraman" and 0.1 < rd.bandwidth < 1.0
    assert rd.enrolled_jump == pytest.approx(1.0, abs=1e-9)  # sharp: everyone above is enrolled
    assert rd.outcome_jump_ci[0] < 0.5 < rd.outcome_jump_ci[1]
    assert rd.outcome_jump_ci[0] > 0.2 and rd.outcome_jump_ci[1] < 0.8  # informative, and excludes zero
    assert rd.effect == pytest.approx(rd.outcome_jump)


def test_no_jump_is_found_unbiased_with_about_nominal_coverage() -> None:
    jumps, covered = [], 0
    for rep in range(40):
        x, y = _noisy(0.0, n=3000, seed=100 + rep)
        rd = regression_discontinuity(x, y, (x >= 0).astype(float), 0.0, draws=100, seed=rep)
        jumps.append(rd.outcome_jump)
        covered += rd.outcome_jump_ci[0] < 0.0 < rd.outcome_jump_ci[1]
    assert abs(np.mean(jumps)) < 0.03  # three standard errors of the mean of 40 estimates (sd about 0.06)
    assert covered >= 34  # 95% intervals: 38 expected of 40


def test_fuzzy_design_recovers_the_effect_of_enrolment() -> None:
    rng = np.random.default_rng(8)
    n = 20000
    x = rng.uniform(40, 80, n)  # a score on its own scale, cut-off 60
    u = rng.random(n)
    enrolled = np.where(x >= 60, u < 0.6, u < 0.1).astype(float)  # uptake above, a few enrolled below
    y = 2 + 0.05 * (x - 60) - 1.5 * enrolled + rng.normal(0, 1, n)
    rd = regression_discontinuity(x, y, enrolled, 60.0, share=0.25, draws=200, seed=2)
    assert rd.bandwidth == pytest.approx(0.25 * np.ptp(x))
    assert rd.enrolled_jump == pytest.approx(0.5, abs=0.05)
    assert rd.effect_ci[0] < -1.5 < rd.effect_ci[1]
    assert rd.effect_ci[1] < -0.75  # the reduction is detected
    assert rd.outcome_jump == pytest.approx(rd.effect * rd.enrolled_jump)


def test_ik_bandwidth_scales_with_the_score_and_ignores_the_outcome_scale() -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, 5000)
    y = 1 + x + 1.5 * x**2 + 2 * x**3 + 0.4 * (x >= 0) + rng.normal(0, 0.3, x.size)
    h = ik_bandwidth(x, y, 0.0)
    assert ik_bandwidth(0.1 * x + 5, y, 5.0) == pytest.approx(0.1 * h, rel=1e-9)
    assert ik_bandwidth(x, 3 * y - 7, 0.0) == pytest.approx(h, rel=1e-9)
    # more curvature at the cut-off (differing either side) means a narrower bandwidth
    bent = y + 3 * x**2 * (x >= 0)
    assert ik_bandwidth(x, bent, 0.0) < h


def test_too_few_people_at_the_cut_off_is_an_error() -> None:
    x = np.array([-0.9, -0.8, 0.5, 0.6, 0.7, 0.8, 0.9])
    with pytest.raises(DiscontinuityError, match="below"):
        local_linear_jump(x, x, 0.0, 1.0)
    with pytest.raises(DiscontinuityError, match="fewer than 10"):
        ik_bandwidth(x, x, 0.0)


def test_panel_discontinuity_uses_the_scored_month_and_release_hides_small_sides() -> None:
    import pandas as pd

    from evaluation.disclosure import Policy
    from evaluation.programme.discontinuity import panel_discontinuity
    from evaluation.programme.report import _release_discontinuity

    rng = np.random.default_rng(11)
    n = 4000
    score = rng.uniform(0, 10, n)
    treated = (score >= 7).astype(int)
    rate = 0.5 + 0.1 * score - 0.4 * treated
    panel = pd.DataFrame(
        {
            "cohort": pd.Timestamp("2024-01-01"),
            "person_id": np.arange(n),
            "treated": treated,
            "post_years": 1.0,
            "post_admissions": rate + rng.normal(0, 0.2, n),
        }
    )
    other = panel.assign(cohort=pd.Timestamp("2024-02-01"), post_admissions=99.0)  # another month: ignored
    scores = pd.DataFrame({"person_id": np.arange(n), "score": score})
    found = panel_discontinuity(pd.concat([panel, other]), scores, 7.0, "2024-01-01", ("admissions",), draws=100)
    assert found["people_scored"] == n
    e = found["admissions"]
    assert e["effect_ci"][0] < -0.4 < e["effect_ci"][1] and e["effect_ci"][1] < -0.2
    released = _release_discontinuity(found, Policy(), lambda v: round(v, 4))
    assert released["admissions"]["above"] % 5 == 0 and released["admissions"]["effect"] == round(e["effect"], 4)
    small = dict(found, admissions=dict(e, above=3))
    assert "error" in _release_discontinuity(small, Policy(), lambda v: round(v, 4))["admissions"]
