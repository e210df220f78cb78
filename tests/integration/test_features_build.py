"""Feature builds on a 20,000-person synthetic ICS: no leakage, plausible against the ground truth,
clear errors for missing sources, and a manifest that names exactly what was built."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from models import specs

from features.build import FeatureSourceError, build
from phm.core.stats import auroc

IDX = date(2024, 4, 1)
EVENT_TABLES = {
    "apc_spells": ["admission_date", "discharge_date"],
    "gp_events": ["event_date"],
    "prescriptions": ["issue_date"],
    "ae_attendances": ["arrival_time", "departure_time"],
    "op_appointments": ["appointment_date"],
    "community_contacts": ["contact_date"],
    "mh_contacts": ["contact_date"],
    "home_monitoring": ["reading_date"],
    "housing": ["recorded_date"],
    "social_care": ["start_date", "end_date"],
}


@pytest.fixture(scope="module")
def built(ics20k_loaded, tmp_path_factory) -> tuple[pd.DataFrame, dict, Path]:
    settings, _ = ics20k_loaded
    out = tmp_path_factory.mktemp("features") / "ea.parquet"
    manifest = build(settings.warehouse_path, specs.get("emergency_admission").build_config([IDX]), out)
    return pd.read_parquet(out), manifest, settings.warehouse_path


def test_manifest_names_what_was_built(built) -> None:
    df, manifest, _ = built
    assert manifest["definition_hash"] == specs.get("emergency_admission").features.definition_hash()
    assert manifest["rows"] == len(df) > 10_000
    assert "ethnic_category" not in manifest["predictors"] and "ethnic_category" in manifest["carried"]
    assert set(manifest["null_rates"]) == {f.name for f in specs.get("emergency_admission").features.features}
    assert manifest["null_rates"]["age"] == 0 and manifest["null_rates"]["emergency_admissions_12m"] == 0
    lab = manifest["label"]
    assert 0.04 < lab["positives"] / (lab["positives"] + lab["negatives"]) < 0.12
    assert lab["censored_by_reason"].get("moved away", 0) > 0
    assert manifest["data_end"] == "2025-03-31"
    assert sum(manifest["segments"].values()) == len(df) and manifest["segments"]["healthy"] > len(df) / 4
    assert Path(manifest["output"] + ".manifest.json").exists()


def test_features_track_the_true_risk(built) -> None:
    df, _, warehouse = built
    con = duckdb.connect(str(warehouse), read_only=True)
    truth = con.execute("SELECT person_id, p_true FROM truth_emergency_12m WHERE index_date = ?", [IDX]).df()
    joined = df.merge(truth, on="person_id")
    assert len(joined) > 0.95 * len(df)
    for feature in (
        "emergency_admissions_12m",
        "emergency_bed_days_12m",
        "ltc_count",
        "frailty_deficits",
        "age",
        "ae_attendances_12m",
        "medicine_classes_12m",
        "core20",
    ):
        rho = spearmanr(joined[feature], joined.p_true).statistic
        assert rho > 0.05, (feature, rho)
    had = joined.emergency_admissions_12m > 0
    assert joined.p_true[had].mean() > 2.5 * joined.p_true[~had].mean()
    assert spearmanr(joined.days_since_emergency_admission, joined.p_true).statistic < -0.05
    # the outcome follows the truth, and the oracle beats what one feature can do
    labelled = joined.dropna(subset=["label_emergency_12m"])
    y = labelled.label_emergency_12m.astype(bool).to_numpy()
    assert auroc(y, labelled.p_true.to_numpy()) > auroc(y, labelled.emergency_admissions_12m.to_numpy())
    deaths = con.execute("SELECT person_id, date_of_death FROM patients").df()
    joined = joined.merge(deaths, on="person_id")
    died = pd.to_datetime(joined.date_of_death) < pd.Timestamp("2025-04-01")
    assert died[joined.segment == "end_of_life"].mean() > 5 * died[joined.segment != "end_of_life"].mean()
    seg = joined.groupby("segment").p_true.mean()
    assert seg["healthy"] < seg["long_term_conditions"] < seg["complex_multimorbidity"]
    assert seg["healthy"] < seg["frailty_dementia"]


def test_flare_features_track_the_true_risk(ics20k_loaded, tmp_path: Path) -> None:
    settings, _ = ics20k_loaded
    dates = [date(2024, 1, 1) + pd.Timedelta(days=7 * k) for k in range(8)]
    out = tmp_path / "fu.parquet"
    manifest = build(settings.warehouse_path, specs.get("flare_up").build_config(dates), out)
    df = pd.read_parquet(out)
    df["truth_day"] = pd.to_datetime(df.index_date) - pd.Timedelta(days=1)  # truth at the end of the day before
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    truth = con.execute(
        "SELECT person_id, CAST(date AS TIMESTAMP) AS truth_day, p_true FROM truth_exacerbation_14d"
    ).df()
    joined = df.merge(truth, on=["person_id", "truth_day"])
    assert len(joined) > 0.9 * len(df) > 100
    assert spearmanr(joined.hm_symptom_score_mean_7d, joined.p_true, nan_policy="omit").statistic > 0.2
    assert spearmanr(joined.hm_spo2_mean_7d, joined.p_true, nan_policy="omit").statistic < -0.2
    assert manifest["label"]["positives"] > 0


def _writable_copy(warehouse: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy.duckdb"
    shutil.copy(warehouse, copy)
    return copy


def test_events_after_the_index_date_change_no_feature(built, tmp_path: Path) -> None:
    """Leakage test: copy every event table's rows to dates after the index date; features stay identical."""
    df, _, warehouse = built
    copy = _writable_copy(warehouse, tmp_path)
    con = duckdb.connect(str(copy))
    rng = np.random.default_rng(0)
    for table, date_cols in EVENT_TABLES.items():
        shift = int(rng.integers(0, 200))
        sets = ", ".join(
            f"{c} = CAST('{IDX}' AS DATE) + INTERVAL {shift} DAY + ({c} - {c})"
            if c.endswith("time")
            else f"{c} = CAST('{IDX}' AS DATE) + {shift} + (hash(rowid) % 300)::INTEGER"
            for c in date_cols
        )
        con.execute(f"CREATE TEMP TABLE extra AS SELECT * FROM {table}")
        con.execute(f"UPDATE extra SET {sets}")
        con.execute(f"INSERT INTO {table} SELECT * FROM extra")
        con.execute("DROP TABLE extra")
        assert con.execute(f"SELECT count(*) FROM {table} WHERE {date_cols[0]} >= DATE '{IDX}'").fetchone()[0] > 0
    con.close()
    out = tmp_path / "leak.parquet"
    build(copy, specs.get("emergency_admission").build_config([IDX], data_end=date(2025, 3, 31)), out)
    after = pd.read_parquet(out)
    names = [f.name for f in specs.get("emergency_admission").features.features]
    pd.testing.assert_frame_equal(
        df[["person_id", *names]].reset_index(drop=True), after[["person_id", *names]].reset_index(drop=True)
    )


def test_missing_source_table_or_column_is_named(built, tmp_path: Path) -> None:
    _, _, warehouse = built
    copy = _writable_copy(warehouse, tmp_path)
    con = duckdb.connect(str(copy))
    con.execute("ALTER TABLE ae_attendances DROP COLUMN acuity")
    con.execute("DROP TABLE mh_contacts")
    con.close()
    with pytest.raises(FeatureSourceError) as exc:
        build(copy, specs.get("emergency_admission").build_config([IDX]), tmp_path / "x.parquet")
    assert "mh_contacts" in str(exc.value) and "ae_attendances.acuity" in str(exc.value)
    assert not (tmp_path / "x.parquet").exists()


def test_no_warehouse_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="phm data load"):
        build(tmp_path / "none.duckdb", specs.get("emergency_admission").build_config([IDX]), tmp_path / "x.parquet")


def test_unknown_model(tmp_path: Path) -> None:
    with pytest.raises(
        specs.UnknownModelError,
        match="unknown model 'nonsense'; choose from emergency_admission, flare_up, acsc_admission",
    ):
        specs.get("nonsense")
    assert set(specs.SPECS) == {"emergency_admission", "flare_up", "acsc_admission"}
    assert specs.get("flare-up") is specs.SPECS["flare_up"]


def test_ethnicity_as_predictor_is_recorded(built, tmp_path: Path) -> None:
    _, _, warehouse = built
    m = build(
        warehouse,
        specs.get("emergency_admission").build_config([IDX], ethnicity_as_predictor=True),
        tmp_path / "e.parquet",
    )
    assert m["ethnicity_as_predictor"] is True and "ethnic_category" in m["predictors"]
