"""The pool of forecasters by name, and the ensemble of several of them."""

from __future__ import annotations

import numpy as np

from models.forecasting.forecasters import Forecaster, HarmonicAR, ProphetForecaster, SeasonalNaive
from models.forecasting.statistical import STATISTICAL


class Ensemble(Forecaster):
    """The median (or mean) of several members' forecasts, day by day."""

    name, description = "ensemble", "median of the statistical models"
    members: tuple[str, ...] = ("harmonic_ar", "auto_ets", "auto_theta", "mstl")
    method = "median"
    weights: tuple[float, ...] | None = None

    def configure(self, members: list[str], method: str, weights: list[float] | None = None) -> Ensemble:
        self.members, self.method, self.weights = tuple(members), method, tuple(weights) if weights else None
        return self

    def _fit(self) -> None:
        self._fitted = [FORECASTERS[m](self.calendar).fit(self.history, self.capacity) for m in self.members]

    def _predict(self, horizon: int) -> np.ndarray:
        return combine([m.predict(horizon) for m in self._fitted], self.method, self.weights)


def combine(points: list[np.ndarray], method: str, weights=None) -> np.ndarray:
    """Day-by-day median, mean or weighted mean of member forecasts (a weighted one without weights: the median)."""
    if method == "weighted" and weights is not None:
        w = np.asarray(weights, dtype=float)
        return np.tensordot(w / w.sum(), np.asarray(points), axes=1)
    return np.mean(points, axis=0) if method == "mean" else np.median(points, axis=0)


FORECASTERS: dict[str, type[Forecaster]] = {
    c.name: c for c in (SeasonalNaive, HarmonicAR, ProphetForecaster, *STATISTICAL, Ensemble)}
