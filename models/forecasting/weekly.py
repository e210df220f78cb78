"""The weekly profile and smoothed level: a forecaster that holds a series' recent level and weekday pattern
flat, with nothing to extrapolate, and so does not drift at two to four weeks where a model that follows
each day's noise (or a few weeks' trend) does."""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from models.forecasting import holiday_effects
from models.forecasting.forecasters import Forecaster

PROFILE_WEEKS = 8
RATES = (0.1, 0.2, 0.3, 0.5)  # exponential smoothing rates whose levels are averaged (with last week's mean)


class WeeklyLevel(Forecaster):
    """Holiday effects divided out (`holiday_effects.py`); the weekday profile is the median over the last
    eight weeks of each day's difference from its week's mean; the level of the series less its profile is
    the average of exponentially smoothed levels at rates 0.1-0.5 and of the last week's mean (a fixed spread
    of rates rather than one fitted to one-day-ahead errors, which chases noise). Forecast: level + profile,
    holiday effects put back."""

    name, description = "weekly_level", "weekly profile + smoothed level (holiday-adjusted)"

    def _fit(self) -> None:
        recent = self.history.iloc[-PROFILE_WEEKS * 7 * 2 :]
        self._effects = holiday_effects.estimate(self.history.iloc[-365:], self.calendar)
        y = self._effects.adjust(recent).to_numpy()
        weeks = min(PROFILE_WEEKS, y.size // 7)
        block = y[y.size - 7 * weeks :].reshape(weeks, 7)
        self._profile = np.median(block - block.mean(axis=1, keepdims=True), axis=0)  # position p: day n - 7 + p
        flat = y - self._profile[(np.arange(y.size) - y.size) % 7]
        levels = [lfilter([a], [1, a - 1], flat, zi=[(1 - a) * flat[0]])[0][-1] for a in RATES]
        self._level = float(np.mean(levels + [flat[-7:].mean()]))

    def _predict(self, horizon: int) -> np.ndarray:
        point = self._level + self._profile[np.arange(horizon) % 7]
        return self._effects.apply(point, self.future_index(horizon))
