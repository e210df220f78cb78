"""The planner's CSV options and refusals, the forecast configuration's calendar, and the model-choice rule
(pure functions, small files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from features.planner_csv import SeriesFileError, parse_columns, read_series_csv
from models.forecasting.calendar import holiday_days
from training.demand import ForecastConfig
from training.demand_backtest import SeriesRefused, check_series, choose, independent_windows


def planner_rows(days: int = 30, start: str = "2023-03-01") -> pd.DataFrame:
    idx = pd.date_range(start, periods=days, freq="D")
    return pd.DataFrame(
        {
            "date": idx.strftime("%Y-%m-%d"),
            "site": "RXX01",
            "metric": "beds",
            "value": 44000.0 + np.arange(days) * 7,
            "capacity": 48000,
        }
    )


def write(tmp_path: Path, table: pd.DataFrame) -> Path:
    path = tmp_path / "series.csv"
    table.to_csv(path, index=False)
    return path


def test_uk_dates_need_dayfirst_and_are_read_right_with_it(tmp_path: Path) -> None:
    rows = planner_rows()
    uk = rows.assign(date=pd.to_datetime(rows.date).dt.strftime("%d/%m/%Y"))
    path = write(tmp_path, uk)
    with pytest.raises(
        SeriesFileError, match=r"series.csv: field date: missing or not a date .*--dayfirst.*line\(s\) \[2, 3"
    ):
        read_series_csv(path)  # ISO by default: 01/03/2023 is not guessed
    frame, _ = read_series_csv(path, dayfirst=True)
    assert frame.date.iloc[0] == pd.Timestamp("2023-03-01") and frame.date.iloc[-1] == pd.Timestamp("2023-03-30")
    bad = uk.copy()
    bad.loc[3, "date"] = "31/02/2023"
    with pytest.raises(SeriesFileError, match=r"field date: .*dd/mm/yyyy expected with --dayfirst.* line\(s\) \[5\]"):
        read_series_csv(write(tmp_path, bad), dayfirst=True)


def test_thousands_separators_in_values_and_capacity(tmp_path: Path) -> None:
    rows = planner_rows().assign(value=lambda t: t.value.map(lambda v: f"{v:,.0f}"), capacity="48,000")
    frame, _ = read_series_csv(write(tmp_path, rows))
    assert frame.value.iloc[0] == 44000.0 and frame.value.iloc[1] == 44007.0 and (frame.capacity == 48000).all()
    wrong = rows.copy()
    wrong.loc[6, "value"] = "44,59"  # not a thousands grouping
    with pytest.raises(SeriesFileError, match=r"field value: missing or not a number on line\(s\) \[8\]"):
        read_series_csv(write(tmp_path, wrong))
    wrong = rows.copy()
    wrong.loc[2, "capacity"] = "-1,000"
    with pytest.raises(SeriesFileError, match=r"field capacity: not a positive number on line\(s\) \[4\]"):
        read_series_csv(write(tmp_path, wrong))


def test_column_mapping_and_optional_capacity(tmp_path: Path) -> None:
    rows = planner_rows().drop(columns="capacity").rename(columns={"date": "Day", "value": "Occupied"})
    path = write(tmp_path, rows)
    with pytest.raises(SeriesFileError, match=r"missing column\(s\) \['date', 'value'\].*--columns"):
        read_series_csv(path)
    frame, _ = read_series_csv(path, columns=parse_columns("date=Day, value=Occupied"))
    assert len(frame) == 30 and frame.value.iloc[0] == 44000.0 and frame.capacity.isna().all()
    with pytest.raises(SeriesFileError, match=r"--columns names column\(s\) not in the file: 'Beds' \(for value\)"):
        read_series_csv(path, columns={"date": "Day", "value": "Beds"})
    with pytest.raises(SeriesFileError, match="unknown field 'when'"):
        parse_columns("when=Date")
    with pytest.raises(SeriesFileError, match="is not field=Column"):
        parse_columns("date")


def test_holiday_calendar_setting() -> None:
    assert ForecastConfig().holidays == "england"
    assert pd.Timestamp("2024-08-26") in holiday_days("england", 2024, 2024)  # English summer bank holiday
    assert pd.Timestamp("2024-07-04") in holiday_days("US", 2024, 2024)
    assert pd.Timestamp("2024-08-05") in holiday_days("GB-SCT", 2024, 2024)  # Scotland's, not England's
    assert len(holiday_days("none", 2020, 2025)) == 0
    assert ForecastConfig(holidays="none").holidays == "none"
    with pytest.raises(ValidationError, match="unknown holiday calendar 'XX'"):
        ForecastConfig(holidays="XX")


def test_short_and_mostly_zero_series_are_refused_with_the_reason() -> None:
    cfg = ForecastConfig()
    with pytest.raises(SeriesRefused, match=r"A/x: 100 days of history; at least 140 are needed"):
        check_series("A/x", np.ones(100), cfg)
    sparse = np.zeros(400)
    sparse[::5] = 1.0
    with pytest.raises(SeriesRefused, match=r"B/x: 80% of the last 365 days are zero"):
        check_series("B/x", sparse, cfg)
    check_series("C/x", np.ones(140), cfg)  # enough: one origin with four weeks of outcomes


def test_a_single_model_is_chosen_only_on_clear_and_sufficient_evidence() -> None:
    cfg = ForecastConfig()
    origins = list(range(100, 100 + 14 * 10, 14))  # ten origins 14 days apart: 5 non-overlapping 28-day windows
    assert independent_windows(origins, 28) == 5 and independent_windows(origins[:4], 28) == 2
    base = np.linspace(1.0, 1.2, 10)
    clear = {"ensemble": base, "auto_ets": base * 0.8, "seasonal_naive": base * 1.1}
    assert choose(clear, origins, cfg)[0] == "auto_ets"
    assert choose({**clear, "auto_ets": base * 0.95}, origins, cfg)[0] == "ensemble"  # within the margin
    thin = choose(clear, origins[:4], cfg)
    assert thin[0] == "ensemble" and "too thin" in thin[1]
    lucky = base * 0.8
    lucky[:5] = base[:5] * 1.05  # lower on average but worse on half the origins
    assert choose({**clear, "auto_ets": lucky * 0.5 ** (np.arange(10) >= 5)}, origins, cfg)[0] == "ensemble"
    no_ensemble = ForecastConfig(models=["seasonal_naive", "auto_ets"])
    assert choose({"seasonal_naive": base, "auto_ets": base * 0.8}, origins[:4], no_ensemble)[0] == "seasonal_naive"


def test_mintrace_makes_sites_add_up_and_moves_the_least_accurate_most() -> None:
    from models.forecasting.reconcile import mintrace_wls

    sites = np.array([[100.0, 101, 102], [50, 51, 52]])
    total, out = mintrace_wls(np.array([165.0, 160, 150]), sites, np.full(3, 4.0), np.array([[1.0] * 3, [16.0] * 3]))
    np.testing.assert_array_equal(total, out.sum(axis=0))
    assert (out.sum(axis=0) != sites.sum(axis=0)).all()  # the incoherent base forecasts were changed
    moved = np.abs(out - sites)
    assert (moved[1] > moved[0]).all()  # the noisier site absorbs more of the disagreement
    coherent_total, same = mintrace_wls(sites.sum(axis=0), sites, np.ones(3), np.ones((2, 3)))
    np.testing.assert_allclose(same, sites, rtol=1e-12)  # already coherent: unchanged


def test_ensemble_weights_favour_the_accurate_members_and_drop_those_worse_than_naive() -> None:
    from models.forecasting.pool import Blend, combine
    from training.demand_backtest import ensemble_weights

    actual = np.full((6, 90), 100.0)
    off = {"harmonic_ar": 2.0, "auto_ets": 1.0, "weekly_level": 8.0, "mstl": 4.0, "seasonal_naive": 5.0}
    preds = {m: actual + e for m, e in off.items()}
    preds["weekly_level"][:, 7:] = 100.5  # poor at days 1-7, the best at days 8-28
    bt = {"actual": actual, "scales": np.full(6, 1.0), "member_preds": preds}
    members = ["harmonic_ar", "auto_ets", "mstl", "weekly_level"]
    w = ensemble_weights(bt, ForecastConfig())
    assert w.shape == (4, 90)
    week, month = dict(zip(members, w[:, 0])), dict(zip(members, w[:, 27]))
    assert week["weekly_level"] == 0  # worse than the seasonal naive at days 1-7
    assert week["auto_ets"] == pytest.approx(4 * week["harmonic_ar"]) == pytest.approx(16 * week["mstl"])
    assert month["weekly_level"] == pytest.approx(4 * month["auto_ets"])  # the best at days 8-28
    assert (w[:, 1:7] == w[:, :1]).all() and (w[:, 28:] == w[:, 27:28]).all()  # bands 1-7, 8-28; later leads as 28
    points = [np.full(90, 10.0 * k) for k in range(4)]
    combined = combine(points, "weighted", Blend(w))
    assert combined[0] == pytest.approx(np.dot(w[:, 0], [0, 10, 20, 30]) / w[:, 0].sum())


def test_weighted_ensemble_leans_on_the_anchored_median_after_the_first_week_and_fades_after_the_last_band() -> None:
    from models.forecasting.pool import Blend, combine
    from training.demand_backtest import blend

    actual = np.full((6, 90), 100.0)
    off = {"harmonic_ar": 2.0, "auto_ets": 1.0, "mstl": 4.0, "weekly_level": 3.0, "seasonal_naive": 5.0}
    bt = {"actual": actual, "scales": np.full(6, 1.0), "member_preds": {m: actual + e for m, e in off.items()}}
    b = blend(bt, ForecastConfig())
    assert b.anchor == 3  # the weekly level's position among the members
    np.testing.assert_array_equal(b.lean[:7], 0)  # days 1-7: the back-test weights alone
    np.testing.assert_array_equal(b.lean[7:28], 1)  # days 8-28: the anchored median
    assert b.lean[41] == pytest.approx(0.5) and (b.lean[55:] == 0).all()  # fading out by day 56
    points = [np.arange(90.0) * k for k in (1, 2, 4, 8)]  # members' forecasts, anchor last
    out = combine(points, "weighted", b)
    weighted = combine(points, "weighted", Blend(b.weights))
    np.testing.assert_allclose(out[:7], weighted[:7])
    np.testing.assert_allclose(out[7:28], 0.5 * np.median(points, axis=0)[7:28] + 0.5 * points[3][7:28])
    mid = 0.5 * weighted[41] + 0.5 * (0.5 * 3 * 41 + 0.5 * 8 * 41)
    assert out[41] == pytest.approx(mid)
    stacked = combine(np.stack([np.stack([p, p + 1]) for p in points]), "weighted", b)  # members x origins x leads
    np.testing.assert_allclose(stacked[0], out)
    assert blend(bt, ForecastConfig(ensemble_anchor=None)).lean is None
    assert ForecastConfig(ensemble_anchor="none").ensemble_anchor is None  # as written in a YAML file
    assert blend(bt, ForecastConfig(ensemble_members=["harmonic_ar", "auto_ets"])).lean is None  # no anchor
    with pytest.raises(ValueError, match="unknown forecaster"):
        ForecastConfig(ensemble_anchor="no_such_model")


def test_coverage_warnings_say_why_the_origins_are_few() -> None:
    from training.demand import coverage_warnings

    cfg = ForecastConfig(origins=12)
    cov = {"coverage_80": 0.8, "coverage_95": 0.95, "origins": 2, "horizon": 28, "backtest_origins": 3}
    assert coverage_warnings("A/beds", cov, cfg) == [
        "A/beds: coverage rests on only 2 back-test origin(s) (short history)"
    ]
    few = coverage_warnings("A/beds", {**cov, "backtest_origins": 3}, ForecastConfig(origins=3))
    assert few == ["A/beds: coverage rests on only 2 back-test origin(s) (--origins 3)"]
    off = coverage_warnings("A/beds", {**cov, "coverage_80": 0.6, "origins": 6, "backtest_origins": 12}, cfg)
    assert off == [
        "A/beds: back-test intervals off target: 80% held 60%, 95% held 95% of days 1-28 over 6 origin(s); "
        "treat the intervals with caution"
    ]
