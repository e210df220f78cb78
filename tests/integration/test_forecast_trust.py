"""Forecasts a planner can trust: one year of real bed occupancy (the shared US series, read as a UK planner's
file would be written) forecast through the real `phm forecast fit`, a mostly-zero series refused with the
reason, and the coverage warning on a series with an injected level shift."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from support.cli import run as phm
from training.demand import ForecastConfig, SeriesInput, backtest_series

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "us_inpatient_beds_by_state_2020-08_2021-07.csv"


def shifted_series(shift_days: int | None, days: int = 400, size: float = 1.5, seed: int = 3) -> pd.Series:
    """Occupancy around 200 beds with a weekly cycle; optionally 1.5x the level for the last `shift_days`."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2022-01-01", periods=days, freq="D")
    level = np.full(days, 200.0)
    if shift_days:
        level[-shift_days:] *= size
    weekly = np.array([1.08, 1.04, 1.0, 0.99, 1.0, 0.95, 0.94])[idx.day_of_week]
    return pd.Series(np.round(level * weekly + rng.normal(0, 6, days)), index=idx)


@pytest.mark.slow
def test_coverage_warning_fires_after_a_level_shift_and_intervals_widen() -> None:
    cfg = ForecastConfig(max_horizon=28, horizons=[7, 28], workers=1)
    steady = backtest_series(SeriesInput("RXX01", "beds", shifted_series(None)), cfg)
    shifted = backtest_series(SeriesInput("RXX01", "beds", shifted_series(42)), cfg)
    assert steady.warnings == [] and 0.7 <= steady.coverage["coverage_80"] <= 0.9
    assert shifted.coverage["coverage_80"] < 0.7
    assert any("back-test intervals off target: 80% held" in w for w in shifted.warnings), shifted.warnings
    width = {
        name: float((r.forecast.q90 - r.forecast.q10).iloc[0]) for name, r in (("steady", steady), ("shifted", shifted))
    }
    assert width["shifted"] > 1.2 * width["steady"], width  # the rolling calibration widens them
    assert shifted.forecast.backtest_coverage_80.iloc[0] == shifted.coverage["coverage_80"]


@pytest.mark.slow
def test_one_year_of_real_history_uk_planner_file_through_phm(tmp_path: Path) -> None:
    real = pd.read_csv(REAL, parse_dates=["date"])
    one = real[real.site == "AL"]
    assert len(one) == 365
    table = pd.DataFrame(
        {
            "Day": one.date.dt.strftime("%d/%m/%Y"),
            "site": "AL",
            "metric": "beds_occupied",
            "Occupied": one.value.map(lambda v: f"{v:,}"),
            "capacity": one.capacity,
        }
    )
    sparse = table.assign(site="ZZ", Occupied=np.where(np.arange(365) % 4 == 0, "3", "0"))
    path = tmp_path / "planner.csv"
    pd.concat([table, sparse]).to_csv(path, index=False)
    home = tmp_path / "home"
    fit = phm(
        "forecast",
        "fit",
        "--csv",
        str(path),
        "--dayfirst",
        "--columns",
        "date=Day,value=Occupied",
        "--holidays",
        "US",
        "--workers",
        "1",
        home=home,
    )
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert "refused ZZ/beds_occupied: 75% of the last 365 days are zero" in fit.stderr
    assert "AL/beds_occupied:" in fit.stdout and "origin(s) of 12 back-tested" in fit.stdout
    folder = home / "forecasts" / "latest"
    forecasts = pd.read_parquet(folder / "forecasts.parquet")
    assert set(forecasts.site) == {"AL"} and len(forecasts) == 90
    assert forecasts.date.iloc[0] == one.date.iloc[-1] + pd.Timedelta(days=1)  # from the day after the data ends
    assert (forecasts.q025 <= forecasts.q10).all() and (forecasts.q10 <= forecasts.q90).all()
    meta = json.loads((folder / "fit.json").read_text())
    cov = meta["coverage"]["AL/beds_occupied"]
    assert cov["backtest_origins"] == 12 and 0 < cov["origins"] <= 12 and 0 <= cov["coverage_80"] <= 1
    assert meta["refused"] and meta["config"]["holidays"] == "US"
    pred = phm("forecast", "predict", "--site", "AL", "--metric", "beds_occupied", "--horizon", "7", home=home)
    assert pred.returncode == 0 and "In the back-test these intervals held" in pred.stdout, pred.stdout + pred.stderr


def test_site_forecasts_reconciled_to_the_ics_forecast_intervals_moved_with_them() -> None:
    from training.demand_reconcile import reconcile_results

    real = pd.read_csv(REAL, parse_dates=["date"])
    parts = {s: real[real.site == s].set_index("date").value.astype(float) for s in ("VT", "NH", "ME")}
    parts["ICS"] = sum(parts.values())
    cfg = ForecastConfig(models=["auto_theta"], max_horizon=28, horizons=[7, 28], workers=1)
    results = [backtest_series(SeriesInput(s, "beds", y, 1.2 * float(y.max())), cfg) for s, y in parts.items()]
    before = {r.site: r.forecast.copy() for r in results}
    notes = reconcile_results(results, {(s, "beds"): y for s, y in parts.items()})
    assert notes == ["beds: 3 site forecasts reconciled to add up to the ICS forecast (MinTrace WLS)"]
    by = {r.site: r.forecast for r in results}
    sites_sum = sum(by[s]["mean"].to_numpy() for s in ("VT", "NH", "ME"))
    np.testing.assert_allclose(by["ICS"]["mean"].to_numpy(), sites_sum, rtol=1e-12, atol=0)
    assert not np.allclose(before["ICS"]["mean"], sum(before[s]["mean"] for s in ("VT", "NH", "ME")))
    for r in results:  # each interval moved with its mean, keeping its width and order
        f, b = r.forecast, before[r.site]
        np.testing.assert_allclose((f.q90 - f["mean"]).to_numpy(), (b.q90 - b["mean"]).to_numpy(), atol=1e-9)
        assert (f.q025 <= f.q10).all() and (f.q10 <= f.q90).all() and f.reconciled.all()
    broken = {**{(s, "beds"): y for s, y in parts.items()}, ("ICS", "beds"): parts["ICS"] + 5}
    assert "not reconciled" in reconcile_results(results, broken)[0]
    # a site whose data end a month early forecasts other days: nothing is forced to add up by position
    early = {**parts, "VT": parts["VT"].iloc[:-30]}
    vt = backtest_series(SeriesInput("VT", "beds", early["VT"], 1.2 * float(early["VT"].max())), cfg)
    mixed = [vt if r.site == "VT" else r for r in results]
    kept = {r.site: r.forecast["mean"].copy() for r in mixed}
    notes = reconcile_results(mixed, {(s, "beds"): y for s, y in early.items()})
    assert notes == [
        "beds: not reconciled (the ICS and site series end on different days: 2021-07-01, 2021-07-31; forecasts of "
        "different days cannot be made to add up)"
    ]
    assert all(r.forecast["mean"].equals(kept[r.site]) for r in mixed)


def test_warehouse_forecasts_start_from_the_end_of_the_data(tmp_path: Path) -> None:
    """The last admissions are 2 (site A) and 9 (site B) days before the extract ends, while patients go home up to
    its last day: every series, and so every forecast, runs from the end of the data, not from the last admission."""
    import duckdb

    from features.series import daily_series, data_end

    rng = np.random.default_rng(5)
    first, end = pd.Timestamp("2024-01-01"), pd.Timestamp("2024-08-31")
    rows = []
    for site, stop in (("A", end - pd.Timedelta(days=2)), ("B", end - pd.Timedelta(days=9))):
        for day in pd.date_range(first, stop):
            for _ in range(rng.poisson(6)):
                stay = int(rng.integers(1, 8))
                out = day + pd.Timedelta(days=stay)
                rows.append((site, day.date(), out.date() if out <= end else None, 0, "21"))
    rows.append(("B", (end - pd.Timedelta(days=9)).date(), end.date(), 0, "21"))
    path = tmp_path / "phm.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE apc_spells (site_code VARCHAR, admission_date DATE, discharge_date DATE, "
        "critical_care_days INTEGER, admission_method VARCHAR)"
    )
    con.executemany("INSERT INTO apc_spells VALUES (?, ?, ?, ?, ?)", rows)
    con.execute(
        "CREATE TABLE sites AS SELECT * FROM (VALUES ('A', 60, 4), ('B', 60, 4)) s(site_code, ga_beds, critical_care_beds)"
    )
    con.execute("CREATE TABLE load_info AS SELECT DATE '2026-12-03' AS as_of")  # loaded long after the extract ended
    con.close()
    assert data_end(path) == end.date()
    frame = daily_series(path)
    assert (frame.groupby(["site", "metric"]).date.max() == end).all()
    cfg = ForecastConfig(
        models=["seasonal_naive", "harmonic_ar"],
        max_horizon=14,
        horizons=[7, 14],
        selection_horizons=[7, 14],
        min_history_days=56,
        workers=1,
    )
    part = frame[(frame.site == "B") & (frame.metric == "ga_beds_occupied")]
    result = backtest_series(SeriesInput("B", "ga_beds_occupied", part.set_index("date").value), cfg)
    assert result.forecast.date.iloc[0] == end + pd.Timedelta(days=1)
