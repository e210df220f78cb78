"""Prediction intervals calibrated from rolling-origin back-test residuals (split-conformal style).

The spread of errors grows with lead time: sigma(h)^2 = a + b*h is fitted to the mean squared
back-test error at each lead (non-negative least squares), and the errors divided by sigma(h) are
pooled across leads and origins into one empirical distribution. A quantile at lead h is then
point + sigma(h) * quantile(pooled). The probability of exceeding a threshold comes from the same
distribution.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

QUANTILES = (0.025, 0.1, 0.5, 0.9, 0.975)


@dataclass
class ResidualModel:
    a: float
    b: float
    z: np.ndarray  # pooled standardised errors (actual - forecast) / sigma, sorted

    def sigma(self, horizon: int) -> np.ndarray:
        h = np.arange(1, horizon + 1, dtype=float)
        return np.sqrt(np.maximum(self.a + self.b * h, 1e-9))

    def quantiles(self, point: np.ndarray, qs: tuple[float, ...] = QUANTILES) -> dict[float, np.ndarray]:
        s = self.sigma(point.size)
        return {q: np.clip(point + s * float(np.quantile(self.z, q)), 0, None) for q in qs}

    def exceed_probability(self, point: np.ndarray, threshold: float) -> np.ndarray:
        """P(actual > threshold) at each lead."""
        s = self.sigma(point.size)
        need = (threshold - point) / s
        return 1 - np.searchsorted(self.z, need, side="right") / self.z.size


def fit_residuals(errors: np.ndarray) -> ResidualModel:
    """`errors`: origins x leads array of actual - forecast (NaN where unknown)."""
    errors = np.atleast_2d(np.asarray(errors, dtype=float))
    h = np.arange(1, errors.shape[1] + 1, dtype=float)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # leads no origin has reached yet: NaN, skipped below
        msq = np.nanmean(errors**2, axis=0)
    ok = np.isfinite(msq)
    if ok.sum() == 0:
        raise ValueError("no back-test errors to calibrate intervals")
    X = np.column_stack([np.ones(ok.sum()), h[ok]])
    coef, *_ = np.linalg.lstsq(X, msq[ok], rcond=None)
    a, b = float(coef[0]), float(coef[1])
    if b < 0:  # keep sigma non-decreasing in lead time
        a, b = float(np.mean(msq[ok])), 0.0
    if a < 0:
        b = float(np.sum(h[ok] * msq[ok]) / np.sum(h[ok] ** 2))
        a = 0.0
    a = max(a, 1e-9)
    sigma = np.sqrt(np.maximum(a + b * h, 1e-9))
    z = (errors / sigma[None, :])[np.isfinite(errors)]
    return ResidualModel(a, b, np.sort(z))
