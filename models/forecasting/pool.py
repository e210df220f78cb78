"""The pool of forecasters by name, and the ensemble of several of them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.forecasting.forecasters import Forecaster, HarmonicAR, ProphetForecaster, SeasonalNaive
from models.forecasting.statistical import STATISTICAL
from models.forecasting.weekly import WeeklyLevel


@dataclass(frozen=True)
class Blend:
    """How a weighted ensemble combines its members: `weights` (members x leads, the last lead's holding beyond)
    and, per lead, how far (`lean`, 0-1) the weighted mean moves toward the anchored median - the mean of the
    members' median and the `anchor` member's forecast (its position among the members)."""

    weights: np.ndarray
    lean: np.ndarray | None = None
    anchor: int | None = None

    def apply(self, stack: np.ndarray) -> np.ndarray:
        """Combine members x [origins x] leads into [origins x] leads."""
        leads = stack.shape[-1]
        shape = (-1,) + (1,) * (stack.ndim - 2) + (leads,)
        w = np.asarray(self.weights, dtype=float)[:, _held(self.weights.shape[1], leads)]
        out = np.sum(w.reshape(shape) * stack, axis=0) / w.sum(axis=0)
        if self.lean is None or self.anchor is None:
            return out
        lean = np.asarray(self.lean, dtype=float)[_held(len(self.lean), leads)]
        return (1 - lean) * out + lean * (0.5 * np.median(stack, axis=0) + 0.5 * stack[self.anchor])


def _held(known: int, leads: int) -> np.ndarray:
    """Index of each lead's setting where `known` leads are set (the last holding beyond)."""
    return np.minimum(np.arange(leads), known - 1)


class Ensemble(Forecaster):
    """The median (or mean, or blended weighted mean) of several members' forecasts, day by day."""

    name, description = "ensemble", "back-test-weighted combination of the statistical models"
    members: tuple[str, ...] = ("harmonic_ar", "auto_ets", "mstl", "weekly_level")
    method = "median"
    blend: Blend | None = None

    def configure(self, members: list[str], method: str, blend: Blend | None = None) -> Ensemble:
        """`blend`: the weighted method's weights and anchor (`Blend`); without one it is the median."""
        self.members, self.method, self.blend = tuple(members), method, blend
        return self

    def _fit(self) -> None:
        self._fitted = [FORECASTERS[m](self.calendar).fit(self.history, self.capacity) for m in self.members]

    def _predict(self, horizon: int) -> np.ndarray:
        return combine([m.predict(horizon) for m in self._fitted], self.method, self.blend)


def combine(points: list[np.ndarray], method: str, blend: Blend | None = None) -> np.ndarray:
    """Day-by-day median, mean or weighted blend of member forecasts (members x [origins x] leads; a weighted
    one without a blend: the median)."""
    if method == "weighted" and blend is not None:
        return blend.apply(np.asarray(points, dtype=float))
    return np.mean(points, axis=0) if method == "mean" else np.median(points, axis=0)


FORECASTERS: dict[str, type[Forecaster]] = {
    c.name: c for c in (SeasonalNaive, HarmonicAR, ProphetForecaster, *STATISTICAL, WeeklyLevel, Ensemble)
}
