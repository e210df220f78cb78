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

    def configure(self, members: list[str], method: str) -> Ensemble:
        self.members, self.method = tuple(members), method
        return self

    def _fit(self) -> None:
        self._fitted = [FORECASTERS[m](self.calendar).fit(self.history, self.capacity) for m in self.members]

    def _predict(self, horizon: int) -> np.ndarray:
        return combine([m.predict(horizon) for m in self._fitted], self.method)


def combine(points: list[np.ndarray], method: str) -> np.ndarray:
    """Day-by-day median or mean of member forecasts."""
    return np.median(points, axis=0) if method == "median" else np.mean(points, axis=0)


FORECASTERS: dict[str, type[Forecaster]] = {
    c.name: c for c in (SeasonalNaive, HarmonicAR, ProphetForecaster, *STATISTICAL, Ensemble)}
