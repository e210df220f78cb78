"""Spec: the aggregations, filters and options the catalogue does not use yet (min, max, sum of readings, `last`
of text and with missing values, `between` and `eq` filters, bed-days over all history, active-at-index within a
window, distinct values of an expression, a non-zero default for a mean, days since the last within a window) and
derived features over them, on every engine; the reference engine must agree with DuckDB and Spark.

Person 1 (index date 2024-04-01) has SpO2 readings 98, 97, 96, 95, -, 93, 92, 91 on 24..31 March (28 March:
heart rate only; a second reading on 31 March has no SpO2; 70 on the index date is not seen).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from support.engines import run
from support.feature_tables import IDX, spec_rows, tiny_warehouse

from features.definitions.catalogue.utilisation import EMERGENCY
from features.definitions.expressions import case, col, const, greatest, substr
from features.definitions.model import DerivedFeature, EventFeature, FeatureSet, Filter
from models import specs


def _event(name: str, source: str, date_col: str, **kw) -> EventFeature:
    return EventFeature(name=name, description=name, family="spec", source=source, date=date_col, **kw)


def _readings(name: str, aggregation: str) -> EventFeature:
    return _event(
        name, "home_monitoring", "reading_date", window_days=14, aggregation=aggregation, value="spo2", default=None
    )


FEATURES = FeatureSet(
    name="spec",
    description="every aggregation",
    features=[
        _readings("spo2_min", "min"),
        _readings("spo2_max", "max"),
        _readings("spo2_sum", "sum"),
        _readings("spo2_last", "last"),
        _event(
            "acuity_1_2",
            "ae_attendances",
            "arrival_time",
            window_days=365,
            where=[Filter(column="acuity", op="between", values=[1, 2])],
        ),
        _event(
            "dna",
            "op_appointments",
            "appointment_date",
            window_days=365,
            where=[Filter(column="attendance_status", op="eq", values=["DNA"])],
        ),
        _event(
            "bed_days_ever",
            "apc_spells",
            "admission_date",
            end="discharge_date",
            where=[EMERGENCY],
            aggregation="bed_days",
        ),
        _event(
            "care_from_500d",
            "social_care",
            "start_date",
            end="end_date",
            window_days=500,
            aggregation="active_at_index",
        ),
        _event(
            "care_from_365d",
            "social_care",
            "start_date",
            end="end_date",
            window_days=365,
            aggregation="active_at_index",
        ),
        _event(
            "diagnosis_groups",
            "apc_spells",
            "admission_date",
            aggregation="count_distinct",
            value=substr(col("primary_diagnosis"), 1, 3),
        ),
        _event(
            "critical_care_mean",
            "apc_spells",
            "admission_date",
            window_days=365,
            aggregation="mean",
            value="critical_care_days",
            default=-1,
        ),
        _event(
            "last_emergency_diagnosis",
            "apc_spells",
            "admission_date",
            where=[EMERGENCY],
            aggregation="last",
            value="primary_diagnosis",
            default=None,
        ),
        _event(
            "days_since_3m",
            "apc_spells",
            "admission_date",
            where=[EMERGENCY],
            window_days=90,
            aggregation="days_since_last",
            default=999,
        ),
        DerivedFeature(
            name="either_minus_one",
            description="",
            family="spec",
            depends_on=["dna", "acuity_1_2"],
            expression=greatest(col("dna"), col("acuity_1_2")) - const(1),
        ),
        DerivedFeature(
            name="trend",
            description="",
            family="spec",
            depends_on=["spo2_min", "spo2_max"],
            categorical=True,
            expression=case((col("spo2_min").lt(92) & col("spo2_max").ge(98), "falling"), otherwise="steady"),
        ),
    ],
)


def test_every_aggregation_filter_and_option(tmp_path: Path, engine: str, request: pytest.FixtureRequest) -> None:
    rows = spec_rows()
    rows["home_monitoring"] = [
        {"person_id": 1, "reading_date": f"2024-03-{31 - k + 1:02d}", "spo2": 90 + k} for k in range(1, 9) if k != 4
    ]
    rows["home_monitoring"] += [
        {"person_id": 1, "reading_date": "2024-03-28", "heart_rate": 90},
        {"person_id": 1, "reading_date": "2024-03-31", "heart_rate": 88},
        {"person_id": 1, "reading_date": "2024-04-01", "spo2": 70},
    ]
    wh = tiny_warehouse(tmp_path / "tiny.duckdb", rows)
    cfg = (
        specs.get("emergency_admission")
        .build_config([IDX], data_end=date(2025, 6, 30))
        .model_copy(update={"features": FEATURES})
    )
    df = run(engine, wh, cfg, tmp_path / "a.parquet", request)[0].set_index("person_id")
    p = df.loc[1]
    assert (p.spo2_min, p.spo2_max, p.spo2_sum, p.spo2_last) == (91, 98, 91 + 92 + 93 + 95 + 96 + 97 + 98, 91)
    assert p.acuity_1_2 == 1 and p.dna == 1  # acuity 2 on the index date is not seen
    assert p.bed_days_ever == 3 + 1 + 7 + 2  # the same-day spell adds nothing; the elective spell is not emergency
    assert p.care_from_500d == 1 and p.care_from_365d == 0  # package started 2023-01-01
    assert p.diagnosis_groups == 2  # R07 and J44
    assert p.critical_care_mean == 0 and df.loc[11].critical_care_mean == -1
    assert p.last_emergency_diagnosis == "R074" and pd.isna(df.loc[11].last_emergency_diagnosis)
    assert p.days_since_3m == 7 and df.loc[8].days_since_3m == 999
    assert p.either_minus_one == 0 and df.loc[11].either_minus_one == -1
    assert p.trend == "falling" and df.loc[11].trend == "steady"  # missing readings: not taken
    assert pd.isna(df.loc[11].spo2_min) and pd.isna(df.loc[11].spo2_last)  # missing, not a default
