"""The reference engine (pandas) and DuckDB give the same value for every feature of every model's feature set
on a 2,000-person synthetic ICS, at several index dates: counts, days, flags and categories identical; means,
standard deviations and slopes of home readings within rtol 1e-9, atol 1e-12 (summation order).
(Spark is checked against DuckDB on a 20,000-person ICS in test_engine_parity.)"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from support.engines import assert_agree

from features.build import build
from features.reference import reference_features
from models import specs

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "feature_set,dates,constant",
    [
        # hypertension and depression are never a spell's primary diagnosis in the generator; few people are monitored
        ("emergency_admission", [date(2023, 4, 1), date(2024, 4, 1)], {"ltc_hypertension_hosp", "ltc_depression_hosp"}),
        ("flare_up", [date(2024, 7, 1), date(2024, 7, 2), date(2024, 9, 9)], {"ltc_asthma_hosp"}),
        ("acsc_admission", [date(2023, 4, 1), date(2024, 4, 1)], {"ltc_hypertension_hosp", "ltc_depression_hosp"}),
    ],
)
def test_reference_engine_agrees_with_duckdb_on_a_synthetic_ics(
    feature_set, dates, constant, ics2k_loaded, tmp_path: Path
) -> None:
    cfg = specs.get(feature_set).build_config(dates)
    build(ics2k_loaded.warehouse_path, cfg, tmp_path / "duck.parquet")
    duck = pd.read_parquet(tmp_path / "duck.parquet")
    ref = reference_features(ics2k_loaded.warehouse_path, cfg.features, duck[["person_id", "index_date"]])
    assert_agree(ref, duck, cfg.features)
    # every definition is exercised: each feature takes more than one value across the population
    assert {f.name for f in cfg.features.features if duck[f.name].nunique(dropna=False) < 2} == constant
    assert set(pd.to_datetime(duck.index_date).dt.date) == set(dates)
