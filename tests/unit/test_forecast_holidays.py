"""Holiday effects learnt from a series' own history, and the weekly profile + smoothed level forecaster."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.forecasting import holiday_effects
from models.forecasting.weekly import WeeklyLevel

WEEKLY = np.array([1.08, 1.04, 1.0, 0.99, 1.0, 0.95, 0.94])


def occupancy(
    days: int, effects: dict[int, float] | None, calendar: str = "england", noise: float = 0.0, seed: int = 1
) -> pd.Series:
    idx = pd.date_range("2022-01-03", periods=days, freq="D")
    y = 400 * WEEKLY[idx.day_of_week]
    if effects:
        y = y * holiday_effects.HolidayEffects(calendar, effects).factor(idx)
    return pd.Series(y + np.random.default_rng(seed).normal(0, noise, days), index=idx)


def test_holiday_effects_are_recovered_pooled_and_shrunk() -> None:
    truth = {0: 0.9, 1: 0.93, 2: 0.97}
    y = occupancy(730, truth)
    found = holiday_effects.estimate(y, "england")
    held = len(holiday_effects.holiday_days("england", 2022, 2023).intersection(y.index))
    for offset, ratio in truth.items():  # one pseudo-holiday without effect shrinks the log effect by n / (n + 1)
        assert found.ratios[offset] == pytest.approx(ratio ** (held / (held + 1)), abs=0.006)
    assert found.ratios[-1] == pytest.approx(1.0, abs=0.006) and found.ratios[3] == pytest.approx(1.0, abs=0.006)
    weekly = WEEKLY[y.index.day_of_week]
    assert (found.adjust(y) / weekly).std() < 0.1 * (y / weekly).std()  # the dips divided out (but for shrinkage)
    assert holiday_effects.estimate(y, "none").ratios == {}
    christmas = found.factor(pd.date_range("2024-12-24", periods=5))  # Christmas and Boxing Day are holidays (0)
    assert christmas.tolist() == [found.ratios[o] for o in (-1, 0, 0, 1, 2)]


def test_weekly_level_holds_the_pattern_the_recent_level_and_the_holidays() -> None:
    flat = occupancy(200, None)
    fc = WeeklyLevel("none").fit(flat).predict(21)
    future = pd.date_range(flat.index[-1] + pd.Timedelta(days=1), periods=21)
    np.testing.assert_allclose(fc, 400 * WEEKLY[future.day_of_week], rtol=1e-9)
    shifted = flat.copy()
    shifted.iloc[-28:] *= 1.1  # a level shift four weeks ago: the smoothed level has mostly caught up
    level = WeeklyLevel("none").fit(shifted).predict(7).mean() / (400 * WEEKLY.mean())
    assert 1.08 < level < 1.1
    dips = occupancy(500, {0: 0.85, 1: 0.9})  # to 2023-05-17; the late May bank holiday is 2023-05-29
    ahead = WeeklyLevel("england").fit(dips).predict(21)
    days = pd.date_range(dips.index[-1] + pd.Timedelta(days=1), periods=21)
    k = days.get_loc(pd.Timestamp("2023-05-29"))
    assert ahead[k] / (400 * WEEKLY[0]) == pytest.approx(0.85, abs=0.02)
    assert ahead[k - 7] / (400 * WEEKLY[0]) == pytest.approx(1.0, abs=0.01)
