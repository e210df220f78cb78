"""Spec tests: tiny hand-written tables pin every feature family and label rule, with their edges.

Each runs on every engine (`engine`: the pandas reference engine, DuckDB, Spark), and the reference engine's
features must agree with the SQL engine's on every table (tests/support/engines.py).

Index date 2024-04-01. A 12-month window holds 2023-04-02 .. 2024-03-31 (365 days back, 2024 is a
leap year); a 3-month window holds 2024-01-02 .. 2024-03-31 (90 days back). Events on the index
date belong to the outcome, never to a predictor.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from support.engines import run
from support.feature_tables import IDX, spec_rows, spell, tiny_warehouse

from models import specs

from features.build import EmptyCohortError
from features.cohorts import CohortConfig, LabelConfig


@pytest.fixture
def spec(tmp_path: Path, engine: str, request: pytest.FixtureRequest) -> tuple[pd.DataFrame, dict]:
    wh = tiny_warehouse(tmp_path / "tiny.duckdb", spec_rows())
    cfg = specs.get("emergency_admission").build_config([IDX], data_end=date(2025, 6, 30))
    table, manifest = run(engine, wh, cfg, tmp_path / "f.parquet", request)
    return table.set_index("person_id"), manifest


def test_cohort_rules(spec) -> None:
    df, manifest = spec
    assert sorted(df.index) == [1, 2, 6, 7, 8, 9, 10, 11, 12]
    assert manifest["cohort"]["excluded_by_reason"] == {"not yet registered": 1, "died": 1, "below minimum age": 1}


def test_demography_and_deprivation(spec) -> None:
    df, _ = spec
    p = df.loc[1]
    assert p.age == 73 and p.age_band == "65-74" and p.sex == "F" and p.female == 1
    assert p.imd_decile == 2 and p.core20 == 1 and p.practice_code == "A00001" and p.ethnic_category == "A"
    assert p.registered_days == (IDX - date(2000, 1, 1)).days
    assert df.loc[12].age_band == "85+"


def test_hospital_use_windows_and_edges(spec) -> None:
    p = spec[0].loc[1]
    assert p.emergency_admissions_12m == 3  # 2023-04-02, 2024-01-02, 2024-03-25; not 2023-04-01 or 2022
    assert p.emergency_admissions_3m == 2  # 2024-01-02 and 2024-03-25
    assert p.emergency_bed_days_3m == 7  # same-day spell adds 0; the spell over the index date is clipped
    assert p.emergency_bed_days_12m == 3 + 7
    assert p.elective_admissions_12m == 1
    assert p.days_since_emergency_admission == (IDX - date(2024, 3, 25)).days
    assert spec[0].loc[11].days_since_emergency_admission == 3650  # the declared default


def test_conditions_frailty_and_segments(spec) -> None:
    df, _ = spec
    p = df.loc[1]
    assert p.ltc_copd_gp == 1 and p.ltc_copd_hosp == 1 and p.ltc_copd == 1
    assert p.ltc_diabetes == 0 and p.ltc_ckd == 0  # coded on and after the index date
    assert p.ltc_count == 1
    assert p.frailty_deficits == 2  # falls twice counts once
    assert df.loc[10].ltc_count == 3 and df.loc[10].segment == "complex_multimorbidity"
    assert df.loc[8].segment == "organ_failure"
    assert df.loc[9].segment == "end_of_life"
    assert df.loc[12].segment == "frailty_dementia" and df.loc[12].frailty_deficits == 4
    assert df.loc[11].segment == "healthy"
    assert p.segment == "organ_failure"  # COPD


def test_ae_outpatients_medicines_community_social(spec) -> None:
    df, _ = spec
    p = df.loc[1]
    assert p.ae_attendances_12m == 2  # 23:59 the evening before counts; 00:01 on the index date does not
    assert p.ae_high_acuity_12m == 1
    assert p.outpatient_attendances_12m == 1 and p.outpatient_dna_12m == 1
    assert p.medicine_classes_12m == 4  # 0301 (twice), 0212, 0603, 0501; the 2022 issue is too old
    assert p.rescue_courses_12m == 1 and p.days_since_exacerbation == (IDX - date(2024, 2, 1)).days
    assert p.respiratory_admissions_12m == 0  # the J44.1 spell was in 2022
    assert p.community_contacts_12m == 1 and p.mh_contacts_12m == 1 and p.palliative_care_12m == 0
    assert p.social_care_package == 1
    assert df.loc[8].social_care_package == 0  # ended the day before
    assert df.loc[12].social_care_package == 0  # starts on the index date
    assert p.housing_flag == 1 and df.loc[8].housing_flag == 0  # recorded after the index date


def test_labels_and_censoring(spec) -> None:
    df, manifest = spec
    label = "label_emergency_12m"
    assert df.loc[1, label] == 1  # admitted on the index date
    assert df.loc[2, label] == 0  # died without admission: an outcome-free death, not censored
    assert df.loc[7, label] == 0  # admitted exactly 12 months later: outside [index, index + 12 months)
    assert pd.isna(df.loc[6, label]) and df.loc[6, "censor_reason"] == "moved away"
    assert manifest["label"]["censored_by_reason"] == {"moved away": 1}


def test_death_as_outcome_and_data_end(tmp_path: Path, engine: str, request: pytest.FixtureRequest) -> None:
    wh = tiny_warehouse(tmp_path / "tiny.duckdb", spec_rows())
    cfg = specs.get("emergency_admission").build_config(
        [IDX], data_end=date(2025, 6, 30), label=LabelConfig(include_death=True)
    )
    df = run(engine, wh, cfg, tmp_path / "d.parquet", request)[0].set_index("person_id")
    assert df.loc[2, "label_emergency_12m_or_death"] == 1
    short = specs.get("emergency_admission").build_config([IDX], data_end=date(2024, 12, 31))
    df, m = run(engine, wh, short, tmp_path / "s.parquet", request)
    df = df.set_index("person_id")
    assert df.loc[1, "label_emergency_12m"] == 1  # an outcome seen is an outcome
    assert pd.isna(df.loc[11, "label_emergency_12m"])
    assert m["label"]["censored_by_reason"]["follow-up beyond data"] >= 6


def test_min_age_and_registration_options(tmp_path: Path, engine: str, request: pytest.FixtureRequest) -> None:
    wh = tiny_warehouse(tmp_path / "tiny.duckdb", spec_rows())
    cfg = specs.get("emergency_admission").build_config(
        [IDX], data_end=date(2025, 6, 30), cohort=CohortConfig(min_age=16)
    )
    assert 5 in set(run(engine, wh, cfg, tmp_path / "a.parquet", request)[0].person_id)


def test_home_monitoring_features_and_flare_label(tmp_path: Path, engine: str, request: pytest.FixtureRequest) -> None:
    rows = spec_rows()
    # readings 1..8 days before the index date: SpO2 90 + k (falling towards the index date)
    rows["home_monitoring"] = [
        {
            "person_id": 1,
            "reading_date": f"2024-03-{31 - k + 1:02d}",
            "spo2": 90 + k,
            "heart_rate": 80,
            "symptom_score": 3,
        }
        for k in range(1, 9)
        if k != 4
    ]
    rows["home_monitoring"].append({"person_id": 1, "reading_date": "2024-04-01", "spo2": 70, "heart_rate": 150})
    rows["prescriptions"].append(
        {"person_id": 1, "prescription_id": "r9", "issue_date": "2024-04-14", "bnf_code": "0603020T0"}
    )  # day 13 of the 14-day outcome window
    wh = tiny_warehouse(tmp_path / "tiny.duckdb", rows)
    df, m = run(
        engine,
        wh,
        specs.get("flare_up").build_config([IDX], data_end=date(2025, 6, 30)),
        tmp_path / "fu.parquet",
        request,
    )
    df = df.set_index("person_id")
    assert list(df.index) == [1]  # only the monitored COPD patient
    p = df.loc[1]
    seven = [90 + k for k in (1, 2, 3, 5, 6, 7)]
    assert p.hm_spo2_mean_7d == pytest.approx(sum(seven) / 6)
    assert p.hm_spo2_std_7d == pytest.approx(pd.Series(seven).std())
    assert p.hm_spo2_slope_7d == pytest.approx(-1.0)  # one point lower each day
    assert p.hm_spo2_last == 91  # the reading on the index date is not seen
    assert p.hm_reading_days_7d == 6 and p.hm_missing_days_7d == 1
    assert p.hm_reading_days_14d == 7 and p.hm_missing_days_14d == 7
    assert p.hm_heart_rate_std_7d == 0 and pd.isna(p.hm_fev1_pct_predicted_mean_7d)
    assert p.label_exacerbation_14d == 1 and m["label"]["positives"] == 1
    rows["prescriptions"][-1]["issue_date"] = "2024-04-15"  # day 14: outside
    wh2 = tiny_warehouse(tmp_path / "tiny2.duckdb", rows)
    f2 = run(
        engine,
        wh2,
        specs.get("flare_up").build_config([IDX], data_end=date(2025, 6, 30)),
        tmp_path / "f2.parquet",
        request,
    )[0]
    assert f2.label_exacerbation_14d.tolist() == [0]


def test_several_index_dates_in_one_build(tmp_path: Path, engine: str, request: pytest.FixtureRequest) -> None:
    wh = tiny_warehouse(tmp_path / "tiny.duckdb", spec_rows())
    df, m = run(
        engine,
        wh,
        specs.get("emergency_admission").build_config([date(2023, 4, 1), IDX], data_end=date(2025, 6, 30)),
        tmp_path / "x.parquet",
        request,
    )
    assert set(m["cohort"]["eligible_by_index_date"]) == {"2023-04-01", "2024-04-01"}
    p1 = df[df.person_id == 1].set_index(pd.to_datetime(df[df.person_id == 1].index_date).dt.date)
    assert p1.loc[IDX, "emergency_admissions_12m"] == 3
    assert p1.loc[date(2023, 4, 1), "emergency_admissions_12m"] == 0  # 2022-01-01 is before that window
    assert p1.loc[date(2023, 4, 1), "emergency_bed_days_12m"] == 0
    assert p1.loc[date(2023, 4, 1), "ltc_copd_hosp"] == 1


def test_empty_cohort_is_a_clear_message(tmp_path: Path, engine: str, request: pytest.FixtureRequest) -> None:
    wh = tiny_warehouse(tmp_path / "tiny.duckdb", spec_rows())
    with pytest.raises(EmptyCohortError, match="no one is eligible .* at 1990-01-01 .*not yet registered"):
        run(
            engine,
            wh,
            specs.get("emergency_admission").build_config([date(1990, 1, 1)], data_end=date(2025, 6, 30)),
            tmp_path / "e.parquet",
            request,
        )


def test_ambulatory_care_sensitive_admissions_and_label(
    tmp_path: Path, engine: str, request: pytest.FixtureRequest
) -> None:
    rows = spec_rows()
    rows["apc_spells"] += [
        spell(8, "2023-09-01", "2023-09-04", diagnosis="I500"),  # heart failure: an ACSC, in the window
        spell(8, "2024-02-01", diagnosis="R074"),  # chest pain: not an ACSC
        spell(8, "2024-03-01", method="11", diagnosis="N390"),  # elective: never counted
        spell(10, "2024-06-01", diagnosis="N390"),  # urinary infection in the outcome window
        spell(11, "2024-05-01", method="12", diagnosis="L039"),  # elective ACSC in the window: not the outcome
        spell(12, "2024-05-01", diagnosis="E119"),  # diabetes without complication: not on the list
        spell(12, "2025-03-31", diagnosis="E111"),  # diabetes complication, last day of the window
    ]
    wh = tiny_warehouse(tmp_path / "tiny.duckdb", rows)
    table, m = run(
        engine,
        wh,
        specs.get("acsc_admission").build_config([IDX], data_end=date(2025, 6, 30)),
        tmp_path / "a.parquet",
        request,
    )
    df = table.set_index("person_id")
    assert df.loc[8].acsc_admissions_12m == 1 and df.loc[8].emergency_admissions_12m == 2
    assert df.loc[8].days_since_acsc_admission == (IDX - date(2023, 9, 1)).days
    assert df.loc[1].acsc_admissions_12m == 0  # J441 (COPD) was in 2022: outside the year, not outside all time
    assert df.loc[1].days_since_acsc_admission == (IDX - date(2022, 1, 1)).days
    assert df.loc[11].days_since_acsc_admission == 3650  # none: the declared default
    label = df["label_acsc_12m"]
    assert label.loc[10] == 1 and label.loc[12] == 1  # N390; E111 on the window's last day
    assert label.loc[1] == 0 and label.loc[11] == 0  # an emergency admission that is not an ACSC; an elective ACSC
    assert pd.isna(label.loc[6]) and m["label"]["positives"] == 2
