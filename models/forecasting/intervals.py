"""Prediction intervals calibrated from rolling-origin back-test residuals (split-conformal style).

The spread of errors grows with lead time: sigma(h)^2 = a + b*h is fitted to the mean squared
back-test error at each lead (non-negative least squares), and the errors divided by sigma(h) are
pooled across leads and origins into one empirical distribution. A quantile at lead h is then
point + sigma(h) * quantile(pooled). The probability of exceeding a threshold comes from the same
distribution. A model can be widened: the spread of its 80% and of its 95% interval about the median each
times a factor (per lead), and `needed_widening` says, for days whose outcome is known, what factor would
have put each outcome on the edge of an interval.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

QUANTILES = (0.025, 0.1, 0.5, 0.9, 0.975)


ENDS = {0.8: (0.1, 0.9), 0.95: (0.025, 0.975)}  # the central intervals served (each widened by its own factor)
LEVELS = tuple(ENDS)
KNOTS = (0.0, 0.025, 0.1, 0.5, 0.9, 0.975, 1.0)  # where the widening map bends (quantiles of the errors)


@dataclass
class ResidualModel:
    a: float
    b: float
    z: np.ndarray  # pooled standardised errors (actual - forecast) / sigma, sorted
    widen: np.ndarray = field(default_factory=lambda: np.ones((len(LEVELS), 1)))  # LEVELS x leads (last repeats)
    _quantiles: dict[float, float] = field(default_factory=dict, repr=False, compare=False)

    def zq(self, q: float) -> float:
        """The standardised errors' quantile `q` (before any widening)."""
        if q not in self._quantiles:
            self._quantiles[q] = float(np.quantile(self.z, q))
        return self._quantiles[q]

    def sigma(self, horizon: int) -> np.ndarray:
        h = np.arange(1, horizon + 1, dtype=float)
        return np.sqrt(np.maximum(self.a + self.b * h, 1e-9))

    def factors(self, horizon: int) -> np.ndarray:
        """The widening of the 80% and the 95% interval at leads 1..horizon (LEVELS x horizon)."""
        return self.widen[:, np.minimum(np.arange(horizon), self.widen.shape[1] - 1)]

    def knots(self, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        """The widening as a map of standardised errors, piecewise linear between the errors' quantiles at
        `KNOTS`: the 80% interval's spread about the median times its factor, the 95% interval's times its own
        (never inside the 80% interval), beyond it the slope between the two. Knots (7,) and their images at
        each lead (horizon x 7), both non-decreasing; an unwidened model maps every error to itself."""
        z0, z025, z10, mid, z90, z975, z1 = (self.zq(k) for k in KNOTS)
        c80, c95 = self.factors(horizon)
        v10, v90 = mid - c80 * (mid - z10), mid + c80 * (z90 - mid)
        v025 = np.minimum(mid - c95 * (mid - z025), v10)
        v975 = np.maximum(mid + c95 * (z975 - mid), v90)
        low = (v10 - v025) / (z10 - z025) if z10 > z025 else c95
        high = (v975 - v90) / (z975 - z90) if z975 > z90 else c95
        images = np.column_stack(
            [v025 - low * (z025 - z0), v025, v10, np.full(horizon, mid), v90, v975, v975 + high * (z1 - z975)]
        )
        return np.array([z0, z025, z10, mid, z90, z975, z1]), images

    def standardised(self, horizon: int, qs: tuple[float, ...]) -> list[np.ndarray]:
        """The widened standardised quantiles `qs` at leads 1..horizon (a quantile is point + sigma x this); at
        one of `KNOTS` (every quantile served is) exactly its image."""
        knots, images = self.knots(horizon)
        out = []
        for q in qs:
            if q in KNOTS:
                out.append(images[:, KNOTS.index(q)])
                continue
            zq = self.zq(q)
            i = int(np.clip(np.searchsorted(knots, zq, side="right"), 1, knots.size - 1))
            w = (zq - knots[i - 1]) / (knots[i] - knots[i - 1]) if knots[i] > knots[i - 1] else 1.0
            out.append(images[:, i - 1] + w * (images[:, i] - images[:, i - 1]))
        return out

    def quantiles(self, point: np.ndarray, qs: tuple[float, ...] = QUANTILES) -> dict[float, np.ndarray]:
        s = self.sigma(point.size)
        return {q: np.clip(point + s * v, 0, None) for q, v in zip(qs, self.standardised(point.size, qs))}

    def exceed_probability(self, point: np.ndarray, threshold: float) -> np.ndarray:
        """P(actual > threshold) at each lead."""
        knots, images = self.knots(point.size)
        need = (threshold - point) / self.sigma(point.size)
        z = np.array([np.interp(t, row, knots, left=-np.inf, right=np.inf) for t, row in zip(need, images)])
        return 1 - np.searchsorted(self.z, z, side="right") / self.z.size

    def widened(self, factors: float | np.ndarray) -> ResidualModel:
        """The same model with the spread of its 80% and 95% intervals about the median times `factors`: one
        number, one per lead, or one row per level (LEVELS x leads); the last lead repeats."""
        f = np.asarray(factors, dtype=float)
        if f.ndim < 2:
            f = np.vstack([np.atleast_1d(f)] * len(LEVELS))
        return ResidualModel(self.a, self.b, self.z, f, self._quantiles)  # the same errors: their quantiles kept


def needed_widening(model: ResidualModel, point: np.ndarray, actual: np.ndarray, level: float = 0.8) -> np.ndarray:
    """For each lead, the smallest factor on the spread of the model's central `level` interval (one of
    `LEVELS`) that would hold the known outcome (NaN where the outcome is unknown)."""
    lo, mid, hi = model.standardised(point.size, (ENDS[level][0], 0.5, ENDS[level][1]))
    gap = (np.asarray(actual, dtype=float) - point) / model.sigma(point.size)
    return np.where(gap >= mid, (gap - mid) / np.maximum(hi - mid, 1e-12), (mid - gap) / np.maximum(mid - lo, 1e-12))


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
