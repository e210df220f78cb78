"""Statistical forecasters from statsforecast (AutoETS, AutoARIMA, AutoTheta, MSTL) behind the common
`Forecaster` interface. Each fits on a recent window (a year is plenty for a weekly cycle and local
level), with the series' holiday effects divided out before the fit and put back on the forecast
(`holiday_effects.py`): none of these models knows the calendar. MSTL decomposes the weekly cycle only: adding the yearly one (two years of history) costs ~15x the
time and would put 50 series over the two-minute budget; the harmonic-AR carries the yearly cycle into
the ensemble instead."""

from __future__ import annotations

import numpy as np

from models.forecasting import holiday_effects
from models.forecasting.forecasters import Forecaster


class _StatsForecast(Forecaster):
    window_days = 365

    def _model(self):  # the statsforecast model object for this history
        raise NotImplementedError

    def _fit(self) -> None:
        recent = self.history.iloc[-self.window_days :]
        self._effects = holiday_effects.estimate(recent, self.calendar)
        self._y = self._effects.adjust(recent).to_numpy()

    def _predict(self, horizon: int) -> np.ndarray:
        if np.ptp(self._y) == 0:  # a constant history: the models' own checks refuse it
            return np.full(horizon, self._y[-1])
        point = np.asarray(self._model().forecast(y=self._y, h=horizon)["mean"], dtype=float)
        return self._effects.apply(point, self.future_index(horizon))


class AutoETSForecaster(_StatsForecast):
    """Exponential smoothing of level and weekly season, the error and season forms (additive or
    multiplicative) chosen by AICc. No trend: a trend fitted to a few weeks' drift is extrapolated for
    months (MSTL and the harmonic-AR carry trends into the ensemble), and leaving it out makes the fit five
    times faster than the full search."""

    name, description = "auto_ets", "AutoETS (statsforecast), weekly season, no trend"

    def _model(self):
        from statsforecast.models import AutoETS

        return AutoETS(season_length=7, model="ZNZ")


class AutoARIMAForecaster(_StatsForecast):
    """Seasonal ARIMA with orders chosen by AICc (weekly season); the slowest of the pool."""

    name, description = "auto_arima", "AutoARIMA (statsforecast), weekly season"

    def _model(self):
        from statsforecast.models import AutoARIMA

        return AutoARIMA(season_length=7)


class AutoThetaForecaster(_StatsForecast):
    """Theta method (standard/optimised/dynamic chosen by fit), weekly seasonal adjustment."""

    name, description = "auto_theta", "AutoTheta (statsforecast), weekly season"

    def _model(self):
        from statsforecast.models import AutoTheta

        return AutoTheta(season_length=7)


class MSTLForecaster(_StatsForecast):
    """Loess decomposition of the weekly cycle; the deseasonalised series forecast by non-seasonal AutoETS."""

    name, description = "mstl", "MSTL (statsforecast): weekly cycle, ETS trend"

    def _model(self):
        from statsforecast.models import MSTL, AutoETS

        return MSTL(season_length=[7], trend_forecaster=AutoETS(model="ZZN"))


STATISTICAL = (AutoETSForecaster, AutoARIMAForecaster, AutoThetaForecaster, MSTLForecaster)
