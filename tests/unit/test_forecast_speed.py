"""The forecasting job's speed-ups and the forecast benchmark's hold-out scoring (small, fast, real parts)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_info

from benchmarks.forecast import holdout_accuracy, make_series
from models.forecasting import pool
from models.forecasting.forecasters import SeasonalNaive
from training.demand import ForecastConfig, SeriesInput, backtest_series


class _BlasProbe(SeasonalNaive):
    """The seasonal naive, noting how many threads BLAS may use while it is fitted."""

    name = "blas_probe"
    seen: list[int] = []

    def _fit(self) -> None:
        _BlasProbe.seen.append(max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"))
        super()._fit()


def test_a_series_is_backtested_with_one_blas_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(pool.FORECASTERS, "blas_probe", _BlasProbe)
    monkeypatch.setattr(_BlasProbe, "seen", [])
    before = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    idx = pd.date_range("2023-01-01", periods=200, freq="D")
    y = pd.Series(100 + 10 * (idx.day_of_week == 0) + np.random.default_rng(3).normal(0, 2, 200), index=idx)
    cfg = ForecastConfig(models=["blas_probe"], max_horizon=28, horizons=[7, 28], holidays="none", workers=1)
    res = backtest_series(SeriesInput("S", "beds", y), cfg)
    assert res.selected == "blas_probe" and len(res.forecast) == 28
    assert len(_BlasProbe.seen) == len(res.errors["blas_probe"]) + 1  # every back-test origin and the final fit
    assert set(_BlasProbe.seen) == {1}
    assert [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"] == before  # lifted afterwards


def test_holdout_accuracy_scores_the_forecasts_against_the_seasonal_naive() -> None:
    inputs = make_series(3, 70)
    held = [np.asarray(s.values.to_numpy()[-7:][np.arange(28) % 7], dtype=float) + 1.0 for s in inputs]

    class Result:  # what fit_series returns, as far as the scoring reads it
        def __init__(self, site: str, mean: np.ndarray) -> None:
            self.site, self.forecast = site, pd.DataFrame({"mean": mean})

    perfect = [Result(s.site, h) for s, h in zip(inputs, held)]
    got = holdout_accuracy(inputs, held, perfect)
    assert got["holdout_mase_1-7"] == 0 and got["holdout_mase_1-28"] == 0
    expect = float(
        np.median([1.0 / np.mean(np.abs(s.values.to_numpy()[7:] - s.values.to_numpy()[:-7])) for s in inputs])
    )
    assert got["holdout_naive_mase_1-28"] == pytest.approx(expect, rel=1e-12)  # the naive is 1 off every day
