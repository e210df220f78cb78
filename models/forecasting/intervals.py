"""Prediction intervals calibrated from rolling-origin back-test residuals (split-conformal style).

The spread of errors grows with lead time: sigma(h)^2 = a + b*h is fitted to the mean squared
back-test error at each lead (non-negative least squares), and the errors divided by sigma(h) are
pooled across leads and origins into one empirical distribution. A quantile at lead h is then
point + sigma(h) * quantile(pooled). The probability of exceeding a threshold comes from the same
distribution. A model can be widened by factors (per lead) on the errors' spread about their median, and
`needed_widening` says, for days whose outcome is known, what factor would have put each outcome on the edge
of the 80% interval.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

QUANTILES = (0.025, 0.1, 0.5, 0.9, 0.975)


@dataclass
class ResidualModel:
    a: float
    b: float
    z: np.ndarray  # pooled standardised errors (actual - forecast) / sigma, sorted
    widen: np.ndarray = field(default_factory=lambda: np.ones(1))  # spread about the median by lead (last repeats)

    def sigma(self, horizon: int) -> np.ndarray:
        h = np.arange(1, horizon + 1, dtype=float)
        return np.sqrt(np.maximum(self.a + self.b * h, 1e-9))

    def factors(self, horizon: int) -> np.ndarray:
        return self.widen[np.minimum(np.arange(horizon), self.widen.size - 1)]

    def quantiles(self, point: np.ndarray, qs: tuple[float, ...] = QUANTILES) -> dict[float, np.ndarray]:
        s, f, mid = self.sigma(point.size), self.factors(point.size), float(np.median(self.z))
        return {q: np.clip(point + s * (mid + f * (float(np.quantile(self.z, q)) - mid)), 0, None) for q in qs}

    def exceed_probability(self, point: np.ndarray, threshold: float) -> np.ndarray:
        """P(actual > threshold) at each lead."""
        s, f, mid = self.sigma(point.size), self.factors(point.size), float(np.median(self.z))
        need = mid + ((threshold - point) / s - mid) / f
        return 1 - np.searchsorted(self.z, need, side="right") / self.z.size

    def widened(self, factors: float | np.ndarray) -> ResidualModel:
        """The same model with the errors' spread about their median times `factors` (one, or one per lead, the
        last repeated), the centre kept."""
        return ResidualModel(self.a, self.b, self.z, np.atleast_1d(np.asarray(factors, dtype=float)))


def needed_widening(model: ResidualModel, point: np.ndarray, actual: np.ndarray, level: float = 0.8) -> np.ndarray:
    """For each lead, the smallest factor on the model's spread whose central `level` interval holds the known
    outcome (NaN where the outcome is unknown)."""
    lo, mid, hi = np.quantile(model.z, [(1 - level) / 2, 0.5, (1 + level) / 2])
    gap = ((np.asarray(actual, dtype=float) - point) / model.sigma(point.size) - mid) / model.factors(point.size)
    return np.where(gap >= 0, gap / max(hi - mid, 1e-12), -gap / max(mid - lo, 1e-12))


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
