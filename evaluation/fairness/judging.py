"""How a comparison with the reference group is judged: the ratio interval and the status rule shared by the
score metrics and need at equal score."""

from __future__ import annotations

import numpy as np
from scipy.stats import norm


def _num(x) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def _status(
    judged: bool,
    lo_hi: tuple[float, float],
    small: bool,
    ratio: float | None,
    ci: tuple,
    adj: float | None,
    adjustable: bool,
) -> str:
    if not judged:
        return "shown only"
    if small:
        return "small group"
    if ratio is None:
        return "not estimable"
    lo, hi = lo_hi
    if lo <= ratio <= hi:
        return "within tolerance"
    if ci[0] is None or ci[1] is None or ci[0] <= 1 <= ci[1]:
        return "uncertain"
    if adjustable and adj is not None and lo <= adj <= hi:
        return "explained by age and sex"
    return "flag"


def ratio_interval(draws: np.ndarray, point: float | None, level: float) -> tuple[float | None, float | None]:
    """Interval for a ratio from the spread of its bootstrap draws on the log scale (normal
    approximation, so extreme simultaneous levels do not depend on a handful of tail draws)."""
    d = draws[np.isfinite(draws) & (draws > 0)]
    if point is None or point <= 0 or d.size < max(10, draws.size // 10):
        return None, None
    z = float(norm.ppf(1 - (1 - level) / 2))
    se = float(np.std(np.log(d), ddof=1))
    return float(point * np.exp(-z * se)), float(point * np.exp(z * se))
