"""Forecasters of a daily series, all with the same interface: `fit(history, capacity)` on a series
with a daily DatetimeIndex (no gaps), then `predict(horizon)` -> point forecasts for the next days.

Intervals are not each model's own: every model's intervals come from its rolling-origin back-test
residuals (`intervals.py`), so an 80% interval means what it says whatever the model.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod

import numpy as np
import pandas as pd

from models.forecasting.calendar import DEFAULT_CALENDAR, holiday_days, prophet_holidays


class Forecaster(ABC):
    name: str
    description: str

    def __init__(self, calendar: str = DEFAULT_CALENDAR) -> None:
        self.history: pd.Series | None = None
        self.capacity: float | None = None
        self.calendar = calendar

    def fit(self, history: pd.Series, capacity: float | None = None) -> Forecaster:
        if len(history) < 28:
            raise ValueError(f"{self.name}: at least 28 days of history are needed, got {len(history)}")
        idx = pd.DatetimeIndex(history.index)
        if (np.diff(idx.values).astype("timedelta64[D]").astype(int) != 1).any():
            raise ValueError(f"{self.name}: the history must be daily without gaps")
        self.history = pd.Series(history.to_numpy(dtype=float), index=idx)
        self.capacity = capacity if capacity and np.isfinite(capacity) and capacity > 0 else None
        self._fit()
        return self

    def future_index(self, horizon: int) -> pd.DatetimeIndex:
        return pd.date_range(self.history.index[-1] + pd.Timedelta(days=1), periods=horizon, freq="D")

    def predict(self, horizon: int) -> np.ndarray:
        if self.history is None:
            raise RuntimeError(f"{self.name}: fit before predict")
        if horizon < 1:
            raise ValueError("horizon must be at least 1 day")
        return np.clip(self._predict(horizon), 0, None)

    @abstractmethod
    def _fit(self) -> None: ...

    @abstractmethod
    def _predict(self, horizon: int) -> np.ndarray: ...


class SeasonalNaive(Forecaster):
    """The value on the same weekday of the last observed week."""

    name, description = "seasonal_naive", "same weekday last week (baseline)"

    def _fit(self) -> None:
        self._last_week = self.history.to_numpy()[-7:]

    def _predict(self, horizon: int) -> np.ndarray:
        return self._last_week[np.arange(horizon) % 7]


def _design(index: pd.DatetimeIndex, origin: pd.Timestamp, holidays_idx: pd.DatetimeIndex, k: int = 4) -> np.ndarray:
    """Intercept, trend, weekdays, `k` yearly harmonic pairs and holiday/day-after indicators."""
    t = (index - origin).days.to_numpy(dtype=float) / 365.25
    doy = 2 * np.pi * index.day_of_year.to_numpy() / 365.25
    cols = [np.ones(len(index))] + ([t] if k else [])
    cols += [(index.day_of_week == d).astype(float) for d in range(1, 7)]
    for j in range(1, k + 1):
        cols += [np.sin(j * doy), np.cos(j * doy)]
    hol = index.isin(holidays_idx)
    after = (index - pd.Timedelta(days=1)).isin(holidays_idx)
    cols += [hol.astype(float), after.astype(float)]
    return np.column_stack(cols)


class HarmonicAR(Forecaster):
    """Linear trend, weekday effects, yearly harmonics and holidays (least squares on the last two
    years), with the residual's persistence (AR(1)) carrying today's level forward. The yearly cycle and
    the trend need history to rest on: below two years neither is fitted (a trend through part of a
    year's cycle extrapolates the season), leaving level, weekdays, holidays and the AR(1)."""

    name, description = "harmonic_ar", "weekday + yearly harmonics + bank holidays, AR(1) residual"
    window_days = 730

    def _fit(self) -> None:
        y = self.history.iloc[-self.window_days :]
        self._origin = y.index[0]
        years = (y.index[0].year, y.index[-1].year + 2)
        self._hol = holiday_days(self.calendar, *years)
        self._k = 4 if len(y) >= 700 else 0
        X = _design(y.index, self._origin, self._hol, self._k)
        self._beta, *_ = np.linalg.lstsq(X, y.to_numpy(), rcond=None)
        resid = y.to_numpy() - X @ self._beta
        a, b = resid[:-1], resid[1:]
        denom = float(a @ a)
        self._phi = float(np.clip((a @ b) / denom, -0.99, 0.99)) if denom > 0 else 0.0
        self._last_resid = float(resid[-1])

    def _predict(self, horizon: int) -> np.ndarray:
        idx = self.future_index(horizon)
        X = _design(idx, self._origin, self._hol, self._k)
        return X @ self._beta + self._last_resid * self._phi ** np.arange(1, horizon + 1)


def _quiet_stan() -> None:
    """cmdstanpy configures its own INFO logger on first use; disable it (errors still raise)."""
    logging.getLogger("cmdstanpy").disabled = True
    logging.getLogger("prophet").setLevel(logging.ERROR)
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)  # "plotly failed": interactive plots are unused


class ProphetForecaster(Forecaster):
    """Prophet with weekly and yearly seasonality and England bank holidays; logistic growth under a
    ceiling just above the bed base for occupancy (a ward cannot fill past its beds and escalation),
    linear growth for admissions. Point forecasts only (intervals come from the back-test)."""

    name, description = "prophet", "Prophet: weekly + yearly seasonality, bank holidays, capacity-aware growth"
    window_days = 1095

    def _fit(self) -> None:
        _quiet_stan()
        from prophet import Prophet

        _quiet_stan()

        y = self.history.iloc[-self.window_days :]
        df = pd.DataFrame({"ds": y.index, "y": y.to_numpy()})
        years = (y.index[0].year, y.index[-1].year + 2)
        logistic = self.capacity is not None
        self._cap = max(1.1 * self.capacity, 1.05 * float(y.max())) if logistic else None
        if logistic:
            df["cap"], df["floor"] = self._cap, 0.0
        self._model = Prophet(
            growth="logistic" if logistic else "linear",
            yearly_seasonality=True,
            weekly_seasonality=True,
            daily_seasonality=False,
            holidays=prophet_holidays(*years, self.calendar),
            uncertainty_samples=0,
        )
        self._model.fit(df, algorithm="LBFGS")

    def _predict(self, horizon: int) -> np.ndarray:
        future = pd.DataFrame({"ds": self.future_index(horizon)})
        if self._cap is not None:
            future["cap"], future["floor"] = self._cap, 0.0
        return self._model.predict(future)["yhat"].to_numpy()
