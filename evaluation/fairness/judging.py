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


PROPORTIONS = ("selection_rate", "tpr", "fnr", "fpr", "ppv")
"""Metrics that are a share of people: at 0 or 1 every bootstrap draw is too, so their intervals come from counts."""


def denominators(n: float, events: float, selection_rate: float, people: float, people_events: float, clustered: bool):
    """The people each proportion is a share of. With several rows per person, no more than the people (a
    conservative effective size: rows of one person are not independent)."""
    flagged = selection_rate * n if np.isfinite(selection_rate) else 0.0
    rows = {"selection_rate": n, "tpr": events, "fnr": events, "fpr": n - events, "ppv": flagged}
    if not clustered:
        return rows
    caps = {"selection_rate": people, "tpr": people_events, "fnr": people_events, "fpr": people, "ppv": people}
    return {m: min(rows[m], caps[m]) for m in rows}


def exact_bound(den: float, alpha: float) -> float:
    """Clopper-Pearson one-sided bound for a share observed at 0 of `den`: the largest true share that gives 0
    with probability alpha (1 - alpha ** (1 / den)). For a share at 1, 1 minus it is the lower bound."""
    return float(1 - alpha ** (1 / den)) if den >= 1 else 1.0


def boundary_interval(value: float | None, den: float, level: float) -> tuple[float, float] | None:
    """Exact interval of a proportion observed at 0 or 1 (where the bootstrap's draws are all that value and
    its percentile interval collapses to a point); None inside (0, 1)."""
    if value is None or den < 1 or value not in (0.0, 1.0):
        return None
    bound = exact_bound(den, (1 - level) / 2)
    return (0.0, bound) if value == 0.0 else (1 - bound, 1.0)


def zero_ratio_interval(
    den: float, ref_value: float | None, ref_draws: np.ndarray, level: float
) -> tuple[float | None, float | None]:
    """Interval for the ratio of a group's proportion observed at 0 (of `den` people) to the reference's. Every
    bootstrap draw of the group is 0, so the draws cannot bound the ratio: the upper bound is the group's exact
    upper bound over the reference's lower bound (log-normal from its draws), each at one-sided (1 - level) / 4,
    so the ratio's upper bound holds at (1 - level) / 2 as for any other interval."""
    if den < 1 or ref_value is None or ref_value <= 0:
        return None, None
    alpha = (1 - level) / 4
    d = ref_draws[np.isfinite(ref_draws) & (ref_draws > 0)]
    se = float(np.std(np.log(d), ddof=1)) if d.size >= max(10, ref_draws.size // 10) else float("inf")
    ref_low = ref_value * float(np.exp(-norm.ppf(1 - alpha) * se))
    return 0.0, (exact_bound(den, alpha) / ref_low if ref_low > 0 else None)


def reference_index(names: list[str], wanted: str | None, people: np.ndarray, small: np.ndarray) -> tuple[int, str]:
    """The reference group: the stated one unless it is absent or small (a small group is never judged, so it is
    no yardstick for others either: its every draw can sit at 0 or 1), else the largest group. Also a note when
    the stated reference was not used."""
    largest = int(np.argmax(people))
    if wanted in names and not small[names.index(wanted)]:
        return names.index(wanted), ""
    if wanted is None:
        return largest, ""
    why = "is small" if wanted in names else "has no one in these data"
    return (
        largest,
        f"The stated reference group {wanted} {why}: groups are compared with the largest, {names[largest]}.",
    )
