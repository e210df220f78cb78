"""Comparison people enrolled within their own follow-up: their events after enrolment found (on a real DuckDB) and
scaled back by the estimated effect, on hand-made cohorts whose answers are worked out by hand."""

from __future__ import annotations

from datetime import date

import duckdb
import numpy as np
import pandas as pd
import pytest

from evaluation.programme.crossover import crossed_events
from evaluation.programme.estimators import (
    bootstrap_sums,
    difference_in_differences,
    difference_in_differences_not_now,
)

# Ten person-years each side. The enrolled go from 10 admissions to 6 (rate 1.0 -> 0.6); without the programme they
# would have stayed at 1.0, so the truth is -40%. Their comparisons would also have stayed at 10 admissions, but 5
# of those fell after the comparison people's own enrolment, and the programme made them 5 x 0.6 = 3: observed 8.
PANEL = pd.DataFrame(
    {
        "set_id": [1, 1, 2, 2],
        "person_id": [1, 3, 2, 4],
        "treated": [1, 0, 1, 0],
        "weight": [1.0, 1.0, 1.0, 1.0],
        "pre_admissions": [5, 5, 5, 5],
        "post_admissions": [3, 4, 3, 4],
        "post_admissions_crossed": [0, 1.5, 0, 1.5],
        "pre_years": [5.0, 5.0, 5.0, 5.0],
        "post_years": [5.0, 5.0, 5.0, 5.0],
    }
)


def test_not_now_is_diluted_and_the_correction_recovers_the_effect() -> None:
    # as observed: (0.6 - 1.0) - (0.8 - 1.0) = -0.2 over a counterfactual of 0.8: -25%
    assert difference_in_differences_not_now(PANEL, "admissions").relative == pytest.approx(-0.25)
    # the fixed point: the 3 crossed admissions / (1 - 0.4) = 5, so the comparisons stay at 1.0 and r = -40%
    e = difference_in_differences(PANEL, "admissions")
    assert e.relative == pytest.approx(-0.4, abs=1e-9)
    assert e.difference == pytest.approx(-0.4, abs=1e-9)


def test_without_crossed_events_the_correction_changes_nothing() -> None:
    plain = PANEL.assign(post_admissions_crossed=0.0)
    assert difference_in_differences(plain, "admissions").relative == pytest.approx(-0.25)
    assert difference_in_differences(PANEL.drop(columns="post_admissions_crossed"), "admissions").relative == (
        pytest.approx(-0.25)
    )


def test_the_bootstrap_solves_the_correction_in_every_resample() -> None:
    sums = bootstrap_sums(PANEL, ["admissions"], lambda m: np.asarray(m, float), 200, 3)["admissions"]
    assert sums.shape == (200, 9)
    corrected = difference_in_differences(PANEL, "admissions", sums=sums)
    as_seen = difference_in_differences(PANEL, "admissions", sums=sums[:, :8])  # the same draws, uncorrected
    assert corrected.relative == pytest.approx(-0.4, abs=1e-9)
    assert corrected.relative_ci[0] <= -0.4 <= corrected.relative_ci[1]
    # each draw's crossed events are scaled back by that draw's own (negative) effect: every bound moves down
    assert corrected.relative_ci[0] < as_seen.relative_ci[0]
    assert corrected.relative_ci[1] < as_seen.relative_ci[1]


def test_crossed_events_are_counted_from_the_own_enrolment_month_to_the_end_of_follow_up() -> None:
    con = duckdb.connect()
    con.execute("""
        CREATE TABLE apc_spells (person_id BIGINT, admission_date DATE, discharge_date DATE, admission_method VARCHAR);
        INSERT INTO apc_spells VALUES
            (7, DATE '2023-02-10', DATE '2023-02-12', '21'),  -- before person 7's enrolment: not crossed
            (7, DATE '2023-03-01', DATE '2023-03-05', '21'),  -- in the enrolment month: crossed, 4 bed-days
            (7, DATE '2023-06-30', DATE '2023-07-01', '11'),  -- elective: not an emergency admission
            (7, DATE '2023-12-31', DATE '2024-01-03', '22'),  -- after the row's follow-up ends: not counted
            (8, DATE '2023-04-01', DATE '2023-04-02', '21');  -- person 8 is never enrolled
        CREATE TABLE ae_attendances (person_id BIGINT, arrival_time TIMESTAMP);
        INSERT INTO ae_attendances VALUES (7, TIMESTAMP '2023-02-28 23:00:00'), (7, TIMESTAMP '2023-05-01 10:00:00');
    """)
    panel = pd.DataFrame(
        {
            "person_id": [9, 7, 8, 7],
            "treated": [1, 0, 0, 1],
            "cohort": pd.to_datetime(["2023-01-01", "2023-01-01", "2023-01-01", "2023-03-01"]),
            # person 7's row as a comparison is followed to 2023-12-01 (334 days: deregistered)
            "post_years": [1.0, 334 / 365.25, 1.0, 1.0],
        }
    )
    enrolment = pd.DataFrame({"person_id": [9, 7], "enrol_date": [date(2023, 1, 5), date(2023, 3, 20)]})
    out = crossed_events(con, panel, enrolment, end=date(2024, 6, 30))
    assert out["crosses"].tolist() == [False, True, False, False]
    assert out["post_admissions_crossed"].tolist() == [0, 1, 0, 0]
    assert out["post_bed_days_crossed"].tolist() == [0, 4, 0, 0]
    assert out["post_ae_crossed"].tolist() == [0, 1, 0, 0]
