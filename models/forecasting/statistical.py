"""Statistical forecasters from statsforecast (AutoETS, AutoARIMA, AutoTheta, MSTL) behind the common
`Forecaster` interface. Each fits on a recent window (a year is plenty for a weekly cycle and local
level). MSTL decomposes the weekly cycle only: adding the yearly one (two years of history) costs ~15x the
time and would put 50 series over the two-minute budget; the harmonic-AR carries the yearly cycle into
the ensemble instead."""

from __future__ import annotations

import numpy as np

from models.forecasting.forecasters import Forecaster


class _StatsForecast(Forecaster):
    window_days = 365

    def _model(self):  # the statsforecast model object for this history
        raise NotImplementedError

    def _fit(self) -> None:
        self._y = self.history.to_numpy()[-self.window_days:]

    def _predict(self, horizon: int) -> np.ndarray:
        if np.ptp(self._y) == 0:  # a constant history: the models' own checks refuse it
            return np.full(horizon, self._y[-1])
        return np.asarray(self._model().forecast(y=self._y, h=horizon)["mean"], dtype=float)


class AutoETSForecaster(_StatsForecast):
    """Exponential smoothing with the error/trend/season form chosen by AICc (weekly season)."""

    name, description = "auto_ets", "AutoETS (statsforecast), weekly season"

    def _model(self):
        from statsforecast.models import AutoETS

        return AutoETS(season_length=7)


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
