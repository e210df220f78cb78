"""The evaluation panel on a hand-made warehouse (real DuckDB, in memory) whose every number is worked out by hand:
windows cut at registration, death and the data's end, people enrolled later kept as comparisons, counts in the
last 1, 3 and 6 months, bed-days, recency weights, conditions recorded before the month, A&E attendances."""

from __future__ import annotations

import math
from datetime import date

import duckdb
import pandas as pd
import pytest

from evaluation.programme.panel import EnrolmentError, build_panel
from features.sources.codes import CONDITIONS

SNOMED = {c.key: c.snomed for c in CONDITIONS}


def _warehouse() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("""
        CREATE TABLE imd (lsoa11 VARCHAR, imd_decile BIGINT);
        INSERT INTO imd VALUES ('E1', 2), ('E2', 9);
        CREATE TABLE patients (person_id BIGINT, year_of_birth BIGINT, sex VARCHAR, ethnic_category VARCHAR,
            lsoa11 VARCHAR, registration_start DATE, registration_end DATE, date_of_death DATE);
        INSERT INTO patients VALUES
            (1, 1950, 'M', 'A', 'E1', '2015-01-01', NULL, NULL),
            (2, 1960, 'F', 'H', 'E2', '2022-09-15', NULL, '2023-10-01'),
            (3, 1970, 'F', NULL, 'NOWHERE', '2010-01-01', NULL, NULL),
            (4, 2006, 'M', 'A', 'E1', '2010-01-01', NULL, NULL),
            (5, 1940, 'M', 'A', 'E1', '2010-01-01', '2023-02-01', NULL),
            (6, 1980, 'M', 'A', 'E1', '2000-01-01', NULL, NULL);
        CREATE TABLE apc_spells (person_id BIGINT, admission_date DATE, discharge_date DATE, admission_method VARCHAR);
        INSERT INTO apc_spells VALUES
            (1, '2023-02-10', '2023-02-13', '21'), (1, '2022-11-20', '2022-11-22', '21'),
            (1, '2022-02-01', '2022-02-05', '21'), (1, '2023-06-01', NULL, '22'), (1, '2023-01-05', '2023-01-09', '11'),
            (2, '2022-09-01', '2022-09-02', '21'), (2, '2022-12-05', '2022-12-06', '21'),
            (6, '2024-06-30', '2024-07-01', '21');
        CREATE TABLE ae_attendances (person_id BIGINT, arrival_time TIMESTAMP);
        INSERT INTO ae_attendances VALUES (1, '2023-01-01 23:59:00'), (1, '2023-04-01 00:10:00'),
            (3, '2024-05-01 10:00:00');
        CREATE TABLE gp_events (person_id BIGINT, event_date DATE, code VARCHAR);
    """)
    con.execute(
        "INSERT INTO gp_events VALUES (1, '2020-01-01', ?), (1, '2023-05-01', ?), (3, '2023-04-30', ?)",
        [SNOMED["diabetes"], SNOMED["hypertension"], SNOMED["asthma"]],
    )
    return con


ENROLMENT = pd.DataFrame({"person_id": [1, 3], "enrol_date": ["2023-03-15", "2023-05-10"]})


def _days(a: str, b: str) -> int:
    return (date.fromisoformat(b) - date.fromisoformat(a)).days


def test_the_panel_counts_each_window_by_hand() -> None:
    panel = build_panel(_warehouse(), ENROLMENT)
    rows = {(str(r.cohort.date()), r.person_id): r for r in panel.itertuples()}
    # March: 1 (enrolled), 2 and 3 (3 enrolled later is a comparison); 4 is 17, 5 left in February, 6 is a comparison
    assert sorted(rows) == [
        ("2023-03-01", 1),
        ("2023-03-01", 2),
        ("2023-03-01", 3),
        ("2023-03-01", 6),
        ("2023-05-01", 2),
        ("2023-05-01", 3),
        ("2023-05-01", 6),
    ]
    one = rows[("2023-03-01", 1)]
    assert (one.treated, one.age, one.male, one.imd_decile, one.deprivation_quintile) == (1, 73, 1, 2, 1)
    assert one.ethnic_group == "White"
    # emergency admissions from 2022-03-01: 2022-11-20 (6 months), 2023-02-10 (1 month); 2022-02-01 is outside;
    # the elective one in January never counts
    assert (one.admissions_1m, one.admissions_3m, one.admissions_6m, one.pre_admissions) == (1, 1, 2, 2)
    assert one.recency_weighted == pytest.approx(
        math.exp(-_days("2023-02-10", "2023-03-01") / 91.31) + math.exp(-_days("2022-11-20", "2023-03-01") / 91.31),
        rel=1e-12,
    )
    assert one.pre_bed_days == 3 + 2
    # after: 2023-06-01 with no discharge counts bed-days to the data's end (the last emergency admission)
    assert one.post_admissions == 1 and one.post_bed_days == _days("2023-06-01", "2024-06-30")
    assert (one.pre_ae, one.post_ae) == (1, 1)
    assert (one.has_diabetes, one.has_hypertension, one.n_conditions) == (1, 0, 1)
    assert one.pre_years == pytest.approx(365 / 365.25) and one.post_years == pytest.approx(366 / 365.25)
    two = rows[("2023-03-01", 2)]
    # registered 2022-09-15 (the September admission is before it); died 2023-10-01
    assert two.pre_admissions == 1 and two.admissions_3m == 1 and two.admissions_1m == 0
    assert two.pre_years == pytest.approx(_days("2022-09-15", "2023-03-01") / 365.25)
    assert two.post_years == pytest.approx(_days("2023-03-01", "2023-10-01") / 365.25)
    assert (two.imd_decile, two.ethnic_group, two.male) == (9, "Asian", 0)
    three_march, three_may = rows[("2023-03-01", 3)], rows[("2023-05-01", 3)]
    assert (three_march.treated, three_may.treated) == (0, 1)
    assert (three_march.imd_decile, three_march.ethnic_category, three_march.ethnic_group) == (5, "Z", "Unknown")
    # asthma recorded on 30 April counts from May; the A&E visit on 2024-05-01 is the first day after the window
    assert (three_march.has_asthma, three_may.has_asthma, three_may.post_ae) == (0, 1, 0)


def test_unknown_people_are_refused_by_name_of_the_problem() -> None:
    bad = pd.DataFrame({"person_id": [1, 99], "enrol_date": ["2023-03-15", "2023-03-15"]})
    with pytest.raises(EnrolmentError, match="1 of 2 person ids are not in the warehouse"):
        build_panel(_warehouse(), bad)
