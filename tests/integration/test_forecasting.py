"""Demand forecasting: forecasters and intervals on series with known structure, the planner's CSV
rules, and the whole job through the real `phm` command on the 20,000-person synthetic ICS (series
from the warehouse, back-tests, MLflow, predictions, exports and scenarios)."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from features.planner_csv import SeriesFileError, read_series_csv
from features.series import METRICS, daily_series
from models.forecasting import accuracy
from models.forecasting.forecasters import HarmonicAR, ProphetForecaster, SeasonalNaive
from models.forecasting.intervals import fit_residuals
from phm.core.settings import Settings
from support.homes import approved_champion, copied_home, train_quickly
from support.cli import run as phm
from training import tracking
from training.demand import ForecastConfig


def seasonal_series(days: int = 1100, seed: int = 0, level: float = 60.0) -> pd.Series:
    """Daily counts with a weekly cycle, a winter peak, a slow trend and Poisson noise."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2021-01-01", periods=days, freq="D")
    weekly = np.array([1.12, 1.04, 1.0, 0.98, 1.0, 0.9, 0.86])[idx.day_of_week]
    winter = 1 + 0.15 * np.cos(2 * np.pi * (idx.day_of_year - 15) / 365.25)
    mean = level * weekly * winter * (1 + 0.05 * np.arange(days) / 365)
    return pd.Series(rng.poisson(mean).astype(float), index=idx)


def test_forecasters_beat_the_seasonal_naive_on_structured_series() -> None:
    y = seasonal_series()
    train_part, test_part = y.iloc[:-28], y.iloc[-28:].to_numpy()
    scale = accuracy.seasonal_naive_scale(train_part.to_numpy())
    scores = {}
    for model in (SeasonalNaive(), HarmonicAR(), ProphetForecaster()):
        forecast = model.fit(train_part).predict(28)
        assert forecast.shape == (28,) and (forecast >= 0).all()
        scores[model.name] = accuracy.mase(test_part, forecast, scale)
    assert scores["prophet"] < scores["seasonal_naive"] and scores["harmonic_ar"] < scores["seasonal_naive"]
    with pytest.raises(ValueError, match="without gaps"):
        HarmonicAR().fit(y.drop(y.index[100]))
    with pytest.raises(ValueError, match="at least 28 days"):
        SeasonalNaive().fit(y.iloc[:10])


def test_calibrated_intervals_cover_what_they_claim() -> None:
    rng = np.random.default_rng(1)
    sigma = np.sqrt(4 + 0.5 * np.arange(1, 31))
    train_err = rng.normal(0, 1, (40, 30)) * sigma
    rm = fit_residuals(train_err)
    point = np.full(30, 50.0)
    test = point + rng.normal(0, 1, (400, 30)) * sigma
    q = rm.quantiles(point)
    assert accuracy.coverage(test, q[0.1], q[0.9]) == pytest.approx(0.8, abs=0.04)
    assert accuracy.coverage(test, q[0.025], q[0.975]) == pytest.approx(0.95, abs=0.03)
    assert (np.diff(rm.sigma(30)) >= 0).all()  # wider further ahead
    p_low, p_high = rm.exceed_probability(point, 45), rm.exceed_probability(point, 55)
    assert (p_low > p_high).all() and ((0 <= p_high) & (p_low <= 1)).all()


def test_planner_csv_is_checked_and_small_gaps_repaired(tmp_path: Path) -> None:
    days = pd.date_range("2023-01-01", periods=60, freq="D")
    rows = pd.DataFrame(
        {
            "date": days.strftime("%Y-%m-%d"),
            "site": "RXX01",
            "metric": "beds",
            "value": np.arange(60) + 100.0,
            "capacity": 180,
        }
    )
    good = rows.drop(index=[10, 11, 12])  # a three-day gap
    good = pd.concat([good, good.iloc[[5]]])  # an exact duplicate
    path = tmp_path / "series.csv"
    good.to_csv(path, index=False)
    frame, warnings = read_series_csv(path)
    assert len(frame) == 60 and frame.value.iloc[11] == pytest.approx(111.0)  # interpolated
    assert any("filled 3 missing day(s)" in w for w in warnings) and any("duplicate" in w for w in warnings)

    def refused(table: pd.DataFrame, match: str) -> None:
        table.to_csv(path, index=False)
        with pytest.raises(SeriesFileError, match=match):
            read_series_csv(path)

    refused(rows.drop(index=range(10, 20)), "gap of 10 days")
    neg = rows.copy()
    neg.loc[4, "value"] = -3
    refused(neg, r"negative .* line\(s\) \[6\]")
    clash = pd.concat([rows, rows.iloc[[7]].assign(value=1.0)])
    refused(clash, "different values for 2023-01-08")
    refused(rows.drop(columns="metric"), r"missing column\(s\) \['metric'\]")
    bad_date = rows.copy()
    bad_date.loc[2, "date"] = "31/31/2023"
    refused(bad_date, r"field date: missing or not a date .* on line\(s\) \[4\]")


def test_config_is_validated() -> None:
    with pytest.raises(ValidationError, match="max_horizon"):
        ForecastConfig(horizons=[1, 120], max_horizon=90)
    with pytest.raises(ValidationError, match="unknown forecaster"):
        ForecastConfig(models=["arima"])


@pytest.fixture(scope="module")
def home(ics20k_loaded, tmp_path_factory) -> Settings:
    """The 20k warehouse with an approved emergency-admission champion (scenarios score with nothing less)."""
    from serving.users import Role, add_user

    home = copied_home(ics20k_loaded[0], tmp_path_factory.mktemp("forecast_home"))
    train_quickly(home)
    add_user(home.home, "Dr Ada Jones", Role.safety_officer, [])
    add_user(home.home, "Dee Scientist", Role.data_scientist, [])
    approved_champion(home)
    return home


def test_series_from_the_warehouse(home) -> None:
    frame = daily_series(home.warehouse_path)
    assert set(frame.metric) == set(METRICS) and "ICS" in set(frame.site)
    ics = frame[frame.site == "ICS"].pivot(index="date", columns="metric", values="value")
    sites = frame[frame.site != "ICS"].groupby(["date", "metric"]).value.sum().unstack()
    assert (ics[sites.columns] == sites).all().all()  # the ICS is the sum of its sites
    assert (frame.value >= 0).all() and ics.ga_beds_occupied.mean() > ics.critical_care_beds_occupied.mean() > 0
    winter = ics.emergency_admissions[ics.index.month.isin([12, 1, 2])].mean()
    summer = ics.emergency_admissions[ics.index.month.isin([6, 7, 8])].mean()
    assert winter > summer  # winter pressure
    caps = frame.dropna(subset=["capacity"]).groupby(["site", "metric"]).capacity.first()
    assert caps[("ICS", "ga_beds_occupied")] == caps.drop("ICS", level=0).xs("ga_beds_occupied", level=1).sum()


def test_census_counts_each_patient_in_one_bed(tmp_path: Path) -> None:
    """A midnight in critical care is not also a G&A midnight: every patient is in exactly one bed."""
    import duckdb

    path = tmp_path / "tiny.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE sites (site_code VARCHAR, ga_beds INTEGER, critical_care_beds INTEGER)")
    con.execute("INSERT INTO sites VALUES ('RXX01', 10, 2)")
    con.execute(
        "CREATE TABLE apc_spells (site_code VARCHAR, admission_date DATE, discharge_date DATE, "
        "critical_care_days INTEGER, admission_method VARCHAR)"
    )
    con.execute(
        """INSERT INTO apc_spells VALUES
        ('RXX01', '2024-01-01', '2024-01-10', 3, '21'),  -- critical care nights 1-3, then G&A nights 4-9
        ('RXX01', '2024-01-02', NULL, 0, '21'),          -- G&A from night 2, still in
        ('RXX01', '2024-01-05', '2024-01-05', 0, '11'),  -- a day case: no midnight
        ('RXX01', '2024-01-03', '2024-01-05', 5, '12')   -- 5 critical care days capped at its 2 nights (3-4)"""
    )
    con.close()
    frame = daily_series(path, start=date(2024, 1, 1), end=date(2024, 1, 11))
    site = frame[frame.site == "RXX01"].pivot(index="date", columns="metric", values="value")
    assert site.critical_care_beds_occupied.tolist() == [1, 1, 2, 1, 0, 0, 0, 0, 0, 0, 0]
    assert site.ga_beds_occupied.tolist() == [0, 1, 1, 2, 2, 2, 2, 2, 2, 1, 1]
    assert site.emergency_admissions.tolist() == [1, 1] + [0] * 9


def test_fit_predict_export_and_scenarios_through_phm(home, tmp_path: Path) -> None:
    fit = phm("forecast", "fit", "--site", "ICS", "--origins", "4", home=home.home)
    assert fit.returncode == 0, fit.stderr[-3000:]
    folder = home.home / "forecasts" / "latest"
    backtest = pd.read_parquet(folder / "backtest.parquet")
    mase = backtest.pivot_table(index=["metric", "horizon"], columns="model", values="mase")
    wins = [mase.loc[(m, h), "ensemble"] < mase.loc[(m, h), "seasonal_naive"] for m in METRICS for h in (7, 28)]
    assert sum(wins) >= 4, mase  # the ensemble beats the seasonal naive on most series and horizons
    cols = ["metric", "model", "horizon", "coverage_80", "coverage_95", "origins", "coverage_origins"]
    assert (backtest.coverage_95 >= backtest.coverage_80).all(), backtest[cols].to_string()  # nested intervals
    # the served (ensemble) intervals hold within the product's own warning band (80% within 10 points; 95% >= 90%),
    # averaged over the three series at 7 and 28 days (2 coverage origins each: single rows are too noisy to judge)
    served = backtest[(backtest.model == "ensemble") & backtest.horizon.isin([7, 28])]
    assert abs(served.coverage_80.mean() - 0.8) <= 0.1 and served.coverage_95.mean() >= 0.9, served[cols].to_string()
    meta = json.loads((folder / "fit.json").read_text())
    assert set(meta["selected"].values()) == {"ensemble"}  # 4 origins: too thin to prefer a single model
    assert (
        all(c["backtest_origins"] == 4 for c in meta["coverage"].values()) and "back-test intervals held" in fit.stdout
    )
    widening = [b for c in meta["coverage"].values() for b in c["widening"].values()]  # by level and band of leads
    assert len(widening) == 6 and all(list(w) == ["1-7", "8-28", "29-90"] and min(w.values()) >= 1 for w in widening)
    assert any(max(w.values()) > 1 for w in widening) == ("intervals widened by the back-test's misses" in fit.stdout)
    tracking.configure(home)
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(meta["run_id"], "plots")}
    assert "plots/ICS_ga_beds_occupied.png" in artifacts
    # predictions and exports
    out = tmp_path / "ics_beds.json"
    pred = phm(
        "forecast",
        "predict",
        "--site",
        "ICS",
        "--metric",
        "ga_beds_occupied",
        "--horizon",
        "14",
        "--out",
        str(out),
        home=home.home,
    )
    assert pred.returncode == 0, pred.stderr
    records = json.loads(out.read_text())
    assert len(records) == 14 and all(r["q025"] <= r["q10"] <= r["q90"] <= r["q975"] for r in records)
    assert all(0 <= r["p_exceed"] <= 1 for r in records) and records[0]["capacity"] > 0
    csv = tmp_path / "ics_beds.csv"
    assert (
        phm("forecast", "predict", "--site", "ICS", "--horizon", "7", "--out", str(csv), home=home.home).returncode == 0
    )
    assert len(pd.read_csv(csv)) == 7
    for args, message in (
        (("--site", "NOPE"), "unknown site 'NOPE'"),
        (("--site", "ICS", "--horizon", "0"), "between 1"),
        (("--site", "ICS", "--horizon", "91"), "between 1 and 90"),
    ):
        bad = phm("forecast", "predict", *args, home=home.home)
        assert bad.returncode == 2 and message in bad.stderr
    # scenarios: p = 0 is the baseline; a larger p never adds beds
    from training.scenarios import Scenario, run_scenario

    for metric in ("ga_beds_occupied", "critical_care_beds_occupied", "emergency_admissions"):
        for top, shares in ((0.05, (0.0, 0.1, 0.3, 0.6)), (0.01, (0.0, 0.6, 0.65, 0.7, 0.95, 1.0))):
            results = [
                run_scenario(folder, Scenario(site="ICS", metric=metric, horizon=28, top_share=top, prevented_share=p))
                for p in shares
            ]
            base = pd.DataFrame(results[0].daily)
            assert np.allclose(base.scenario_mean, base.baseline_mean) and (base.change_mean == 0).all()
            for earlier, later in zip(results, results[1:]):  # common random numbers: every quantile moves one way
                a, b = pd.DataFrame(earlier.daily), pd.DataFrame(later.daily)
                assert (b.scenario_mean <= a.scenario_mean + 1e-9).all()
                assert (b.change_q90 <= a.change_q90 + 1e-9).all() and (b.change_q10 <= a.change_q10 + 1e-9).all()
                for name, v in later.summary.items():
                    grows = -1 if name.startswith("change") else 1  # what is saved grows with the share
                    assert all(
                        grows * (v[q] - earlier.summary[name][q]) >= -1e-9 for q in ("q025", "q10", "q90", "q975")
                    ), (metric, top, name, earlier.summary[name], v)
            assert pd.DataFrame(results[-1].daily).change_mean.sum() < 0
    cli = phm(
        "forecast",
        "scenario",
        "--site",
        "ICS",
        "--metric",
        "ga_beds_occupied",
        "--top-share",
        "0.05",
        "--prevented",
        "0.3",
        "--out",
        str(tmp_path / "scenario.csv"),
        home=home.home,
    )
    assert cli.returncode == 0 and "bed days saved over horizon" in cli.stdout
    bad = phm("forecast", "scenario", "--site", "ICS", "--prevented", "1.5", home=home.home)
    assert bad.returncode == 2 and "prevented_share" in bad.stderr


def test_forecast_a_planners_csv(tmp_path: Path) -> None:
    """A site named as hospitals are ("St Mary's (Acute)"), with text that would be console markup: fitted, logged
    and shown as written."""
    name = "[bold]St Mary's (Acute)"
    y = seasonal_series(days=800, seed=4, level=40)
    frame = pd.DataFrame(
        {
            "date": y.index.strftime("%Y-%m-%d"),
            "site": name,
            "metric": "beds_occupied",
            "value": y.to_numpy(),
            "capacity": 60,
        }
    ).drop(index=[400, 401])
    path = tmp_path / "my_series.csv"
    frame.to_csv(path, index=False)
    home = tmp_path / "home"
    fit = phm("forecast", "fit", "--csv", str(path), "--origins", "3", "--max-horizon", "28", home=home)
    assert fit.returncode == 0, fit.stderr[-2000:]
    assert f"{name}/beds_occupied: filled 2 missing day(s)" in " ".join(fit.stderr.split())
    assert f"{name}/beds_occupied: ensemble" in fit.stdout and not list((home / "forecasts").glob(".fit-*"))
    meta = json.loads((home / "forecasts" / "latest" / "fit.json").read_text())
    tracking.configure(Settings(home=home))
    plots = [a.path for a in mlflow.MlflowClient().list_artifacts(meta["run_id"], "plots")]
    assert len(plots) == 1 and plots[0].startswith("plots/_bold_St_Mary_s__Acute_-"), plots  # a safe name + digest
    pred = phm("forecast", "predict", "--site", name, "--metric", "beds_occupied", "--horizon", "28", home=home)
    assert pred.returncode == 0 and "Capacity 60 beds" in pred.stdout and name in pred.stdout
    scenario = phm("forecast", "scenario", "--site", name, "--metric", "ga_beds_occupied", home=home)
    assert scenario.returncode == 2 and "came from a planner's CSV" in scenario.stderr
    (home / "forecasts" / "latest" / "fit.json").unlink()  # a damaged folder is refused, not half-served
    damaged = phm("forecast", "predict", "--site", name, "--metric", "beds_occupied", home=home)
    assert damaged.returncode == 2 and "incomplete or damaged" in damaged.stderr and "Traceback" not in damaged.stderr


def test_bed_nowcast_with_ranges_through_phm(home, tmp_path: Path) -> None:
    out = tmp_path / "nowcast.csv"
    run = phm("forecast", "nowcast", "--out", str(out), home=home.home)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "80% range" in run.stdout and "Ranges from the nowcast's own errors on 40 past nights" in run.stdout
    frame = pd.read_csv(out, parse_dates=["date"])
    assert list(frame.columns) == ["site", "date", "in_beds_now", "nowcast", "q025", "q10", "q90", "q975"]
    assert frame.notna().all().all() and frame.site.iloc[-1] == "ICS"
    assert ((frame.q025 <= frame.q10) & (frame.q10 <= frame.nowcast) & (frame.nowcast <= frame.q90)).all()
    assert ((frame.q90 <= frame.q975) & (frame.q025 >= 0) & (frame.q10 < frame.q90)).all()
    sites = frame[frame.site != "ICS"]
    assert sorted(frame.date.unique()) == sorted(sites.date.unique()) and frame.date.nunique() == 3
    ics = frame[frame.site == "ICS"].set_index("date")
    summed = sites.groupby("date")[["in_beds_now", "nowcast"]].sum()
    assert np.allclose(ics.nowcast, summed.nowcast) and (ics.in_beds_now == summed.in_beds_now).all()
    assert not re.search(r"\b\d{3} ?\d{3} ?\d{4}\b", run.stdout + out.read_text())  # nothing like an NHS number
    kept = json.loads((home.home / "nowcast" / "nowcast.json").read_text())  # what the service shows
    assert "Kept for the Capacity page" in run.stdout and kept["calibration"]["nights"] == 40 and kept["notes"] == []
    saved, numbers = pd.DataFrame(kept["rows"]), ["in_beds_now", "nowcast", "q025", "q10", "q90", "q975"]
    assert saved.site.tolist() == frame.site.tolist() and np.allclose(saved[numbers], frame[numbers], rtol=1e-8)
    one = phm("forecast", "nowcast", "--site", str(sites.site.iloc[0]), "--nights", "2", home=home.home)
    assert one.returncode == 0 and one.stdout.count(str(sites.site.iloc[0])) == 2 and "ICS" not in one.stdout
    for args, message in (
        (("--site", "NOPE"), "unknown site 'NOPE'"),
        (("--site", ""), "unknown site ''"),
        (("--nights", "0"), "--nights 0: between 1 and 7"),
        (("--nights", "8"), "--nights 8: between 1 and 7"),
    ):
        bad = phm("forecast", "nowcast", *args, home=home.home)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr
    # an admissions extract ending before the others, and a site without admissions, are said, not hidden
    import duckdb

    lagging = copied_home(home, tmp_path / "lagging")
    con = duckdb.connect(str(lagging.warehouse_path))
    end = con.execute("SELECT max(admission_date) FROM apc_spells").fetchone()[0]
    con.execute("INSERT INTO sites (site_code) VALUES ('RZZ99')")
    con.execute("INSERT INTO prescriptions (issue_date) VALUES (?)", [end + timedelta(days=10)])
    con.close()
    noted = phm("forecast", "nowcast", "--site", "ICS", "--nights", "1", home=lagging.home)
    assert noted.returncode == 0, noted.stderr
    assert f"on the night of {end}" in noted.stdout and f"ends on {end}, 10 day(s) before" in noted.stdout
    assert "no admissions recorded at RZZ99: not nowcast, and not in the ICS total" in noted.stdout
    # an export may not replace what the service shows, and a wrong suffix is refused before any work
    kept_path = home.home / "nowcast" / "nowcast.json"
    before = kept_path.read_bytes()
    for target, message in ((kept_path, "keeps the nowcast for the service"), (tmp_path / "x.txt", "export to a .csv")):
        bad = phm("forecast", "nowcast", "--out", str(target), home=home.home)
        assert bad.returncode == 2 and message in bad.stderr and "Bed nowcast" not in bad.stdout, bad.stderr
    assert kept_path.read_bytes() == before
    # exports are whole or refused: a folder or an unwritable place is an error naming it, nothing half-written
    folder = tmp_path / "taken.csv"
    folder.mkdir()
    for target in (folder, Path("/proc/nowcast.csv")):
        bad = phm("forecast", "nowcast", "--out", str(target), home=home.home)
        assert bad.returncode == 2 and str(target) in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
