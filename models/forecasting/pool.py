"""The pool of forecasters by name, and the ensemble of several of them."""

from __future__ import annotations

import numpy as np

from models.forecasting.forecasters import Forecaster, HarmonicAR, ProphetForecaster, SeasonalNaive
from models.forecasting.statistical import STATISTICAL
from models.forecasting.weekly import WeeklyLevel


class Ensemble(Forecaster):
    """The median (or mean, or weighted mean) of several members' forecasts, day by day."""

    name, description = "ensemble", "back-test-weighted combination of the statistical models"
    members: tuple[str, ...] = ("harmonic_ar", "auto_ets", "mstl", "weekly_level")
    method = "median"
    weights: np.ndarray | None = None

    def configure(self, members: list[str], method: str, weights=None) -> Ensemble:
        """`weights`: one per member, or members x leads (the last lead's weights hold beyond)."""
        self.members, self.method = tuple(members), method
        self.weights = np.asarray(weights, dtype=float) if weights is not None else None
        return self

    def _fit(self) -> None:
        self._fitted = [FORECASTERS[m](self.calendar).fit(self.history, self.capacity) for m in self.members]

    def _predict(self, horizon: int) -> np.ndarray:
        return combine([m.predict(horizon) for m in self._fitted], self.method, self.weights)


def combine(points: list[np.ndarray], method: str, weights=None) -> np.ndarray:
    """Day-by-day median, mean or weighted mean of member forecasts (a weighted one without weights: the
    median). Weights are one per member or members x leads."""
    if method == "weighted" and weights is not None:
        stack = np.asarray(points)
        w = np.asarray(weights, dtype=float)
        w = (
            np.broadcast_to(w[:, None], stack.shape)
            if w.ndim == 1
            else w[:, np.minimum(np.arange(stack.shape[1]), w.shape[1] - 1)]
        )
        return np.sum(w * stack, axis=0) / w.sum(axis=0)
    return np.mean(points, axis=0) if method == "mean" else np.median(points, axis=0)


FORECASTERS: dict[str, type[Forecaster]] = {
    c.name: c for c in (SeasonalNaive, HarmonicAR, ProphetForecaster, *STATISTICAL, WeeklyLevel, Ensemble)
}
