"""The phases benchmark's memo of forecasts changes no figure: a back-test through it is the one without it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmarks.forecast_phases import memoised_forecasters
from benchmarks.forecast_real import config
from models.forecasting import pool
from training.demand import SeriesInput, backtest_series


def test_memoised_forecasters_give_the_same_back_test_and_put_the_pool_back() -> None:
    rng = np.random.default_rng(11)
    days = pd.date_range("2021-01-01", periods=200, freq="D")
    weekly = np.array([1.08, 1.04, 1.0, 1.0, 0.99, 0.95, 0.94])
    y = pd.Series(300 * weekly[np.arange(200) % 7] + np.cumsum(rng.normal(0, 2, 200)), index=days)
    series, cfg = SeriesInput("S", "beds_occupied", y, None), config(False)
    before = dict(pool.FORECASTERS)
    fresh = backtest_series(series, cfg).forecast
    with memoised_forecasters() as table:
        once = backtest_series(series, cfg).forecast
        filled = len(table)
        again = backtest_series(series, cfg.model_copy(update={"ensemble_anchor": None})).forecast
        assert len(table) == filled > 0  # the second rule refitted nothing
    pd.testing.assert_frame_equal(once, fresh)
    assert pool.FORECASTERS == before
    assert not np.array_equal(again["mean"].to_numpy()[7:], once["mean"].to_numpy()[7:])  # the rules differ
    np.testing.assert_array_equal(again["mean"].to_numpy()[:7], once["mean"].to_numpy()[:7])
