"""Regression discontinuity where enrolment followed a score cut-off: pure functions of arrays.

People at or above `cutoff` on the running variable `x` (the score the enrolment rule used) were offered the
programme, people below were not. The outcome's jump at the cut-off is estimated by local-linear regression on
each side with a triangular kernel (weight 1 - |x - c| / h within the bandwidth h). When not everyone above
the cut-off enrols (uptake, capacity) the design is fuzzy: the effect of enrolment on those enrolled because of
the cut-off is the outcome's jump divided by the jump in the share enrolled (a Wald ratio). The bandwidth is
Imbens and Kalyanaraman's (2012) mean-squared-error-optimal rule, or a stated fixed share of the score's range.
Intervals: percentile bootstrap over people with the bandwidth held at its estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CK_TRIANGULAR = 3.4375  # IK's constant for the triangular kernel


class DiscontinuityError(ValueError):
    """Too few people on a side of the cut-off to estimate the jump."""


@dataclass(frozen=True)
class Discontinuity:
    """Jumps at the cut-off (outcome, share enrolled), their ratio (the fuzzy effect) and 95% bootstrap intervals."""

    cutoff: float
    bandwidth: float
    bandwidth_rule: str
    below: int  # people within the bandwidth on each side
    above: int
    outcome_jump: float
    outcome_jump_ci: tuple[float, float]
    enrolled_jump: float
    effect: float  # outcome jump / enrolled jump
    effect_ci: tuple[float, float]
    outcome_below: float  # the outcome's limit from below (untreated level at the cut-off)

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def triangular(x: np.ndarray, cutoff: float, h: float) -> np.ndarray:
    """Triangular kernel weights of `x` around `cutoff` with bandwidth `h` (zero beyond it)."""
    return np.clip(1.0 - np.abs(x - cutoff) / h, 0.0, None)


def _side_fit(x: np.ndarray, y: np.ndarray, w: np.ndarray, degree: int = 1) -> np.ndarray:
    """Weighted polynomial coefficients (constant first) of y on x, by least squares."""
    keep = w > 0
    design = np.vander(x[keep], degree + 1, increasing=True)
    sw = np.sqrt(w[keep])
    coef, *_ = np.linalg.lstsq(design * sw[:, None], y[keep] * sw, rcond=None)
    return coef


def local_linear_jump(x: np.ndarray, y: np.ndarray, cutoff: float, h: float, min_side: int = 5) -> tuple[float, float]:
    """(jump, limit from below) of E[y | x] at `cutoff`: the two sides' local-linear intercepts, triangular kernel."""
    x, y = np.asarray(x, float) - cutoff, np.asarray(y, float)
    w = triangular(x, 0.0, h)
    below, above = (x < 0) & (w > 0), (x >= 0) & (w > 0)
    if below.sum() < min_side or above.sum() < min_side:
        raise DiscontinuityError(
            f"within the bandwidth {h:.4g} of the cut-off there are {int(below.sum())} people "
            f"below and {int(above.sum())} above (need {min_side} each side)"
        )
    lo = _side_fit(x[below], y[below], w[below])[0]
    hi = _side_fit(x[above], y[above], w[above])[0]
    return float(hi - lo), float(lo)


def ik_bandwidth(x: np.ndarray, y: np.ndarray, cutoff: float) -> float:
    """Imbens-Kalyanaraman (2012) bandwidth for the local-linear jump with a triangular kernel."""
    x, y = np.asarray(x, float) - cutoff, np.asarray(y, float)
    n = x.size
    left, right = x < 0, x >= 0
    if left.sum() < 10 or right.sum() < 10:
        raise DiscontinuityError("fewer than 10 people on a side of the cut-off: no bandwidth can be chosen")
    # step 1: density and conditional variances at the cut-off from a uniform-kernel pilot bandwidth
    h1 = 1.84 * np.std(x, ddof=1) * n ** (-1 / 5)
    lw, rw = left & (x >= -h1), right & (x <= h1)
    if lw.sum() < 2 or rw.sum() < 2:
        raise DiscontinuityError("too few people near the cut-off for the pilot bandwidth")
    density = (lw.sum() + rw.sum()) / (2 * n * h1)
    var_l, var_r = np.var(y[lw], ddof=1), np.var(y[rw], ddof=1)
    # step 2: second derivatives on each side; a global cubic with a jump gives the third derivative that sets
    # the pilot bandwidths for the local quadratics
    mid = (x >= np.median(x[left])) & (x <= np.median(x[right]))
    design = np.column_stack([np.ones(mid.sum()), (x[mid] >= 0), x[mid], x[mid] ** 2, x[mid] ** 3])
    m3 = 6 * np.linalg.lstsq(design, y[mid], rcond=None)[0][4]
    curv = max(m3**2, 0.01)
    h2_l = 3.56 * (var_l / (density * curv)) ** (1 / 7) * left.sum() ** (-1 / 7)
    h2_r = 3.56 * (var_r / (density * curv)) ** (1 / 7) * right.sum() ** (-1 / 7)
    ql, qr = left & (x >= -h2_l), right & (x <= h2_r)
    if ql.sum() < 4 or qr.sum() < 4:
        raise DiscontinuityError("too few people near the cut-off to estimate its curvature")
    m2_l = 2 * _side_fit(x[ql], y[ql], np.ones(ql.sum()), 2)[2]
    m2_r = 2 * _side_fit(x[qr], y[qr], np.ones(qr.sum()), 2)[2]
    # step 3: regularised MSE-optimal bandwidth
    reg = 2160 * var_l / (ql.sum() * h2_l**4) + 2160 * var_r / (qr.sum() * h2_r**4)
    return float(CK_TRIANGULAR * ((var_l + var_r) / (density * ((m2_r - m2_l) ** 2 + reg))) ** (1 / 5) * n ** (-1 / 5))


def regression_discontinuity(
    x: np.ndarray,
    y: np.ndarray,
    enrolled: np.ndarray,
    cutoff: float,
    *,
    bandwidth: float | None = None,
    share: float | None = None,
    draws: int = 200,
    seed: int = 0,
) -> Discontinuity:
    """The jump in `y` and in `enrolled` (0/1) at `cutoff` on score `x`, and their ratio, with bootstrap intervals.

    Bandwidth: `bandwidth` if given, else `share` times the score's range, else the IK rule on `y`."""
    x, y, d = np.asarray(x, float), np.asarray(y, float), np.asarray(enrolled, float)
    if not (x.size == y.size == d.size) or x.size == 0:
        raise DiscontinuityError("score, outcome and enrolment must be non-empty and of one length")
    if bandwidth is not None:
        h, rule = float(bandwidth), "fixed"
    elif share is not None:
        h, rule = float(share) * float(np.ptp(x)), f"fixed share {share:g} of the score's range"
    else:
        h, rule = ik_bandwidth(x, y, cutoff), "Imbens-Kalyanaraman"
    if not h > 0:
        raise DiscontinuityError(f"the bandwidth must be positive (got {h})")
    jump, base = local_linear_jump(x, y, cutoff, h)
    d_jump, _ = local_linear_jump(x, d, cutoff, h)
    near = np.flatnonzero(np.abs(x - cutoff) < h)  # only people within the bandwidth enter the fits
    rng = np.random.default_rng(seed)
    jumps, effects = [], []
    for _ in range(draws):
        pick = near[rng.integers(0, near.size, near.size)]
        try:
            j, _b = local_linear_jump(x[pick], y[pick], cutoff, h)
            dj, _b = local_linear_jump(x[pick], d[pick], cutoff, h)
        except DiscontinuityError:
            continue
        jumps.append(j)
        effects.append(j / dj if dj != 0 else np.nan)
    ci = lambda v: tuple(float(q) for q in np.nanpercentile(v, [2.5, 97.5])) if len(v) else (np.nan, np.nan)  # noqa: E731
    rel = x - cutoff
    return Discontinuity(
        cutoff=float(cutoff),
        bandwidth=h,
        bandwidth_rule=rule,
        below=int(((rel < 0) & (rel > -h)).sum()),
        above=int(((rel >= 0) & (rel < h)).sum()),
        outcome_jump=jump,
        outcome_jump_ci=ci(jumps),
        enrolled_jump=d_jump,
        effect=jump / d_jump if d_jump != 0 else float("nan"),
        effect_ci=ci(effects),
        outcome_below=base,
    )


def panel_discontinuity(
    panel,
    scores,
    cutoff: float,
    month,
    outcomes: tuple[str, ...],
    *,
    draws: int = 200,
    seed: int = 0,
    share: float | None = None,
) -> dict:
    """Per outcome, the discontinuity at `cutoff` among the panel's people at enrolment month `month`, whose
    score (`scores`: person_id, score) the rule used. The outcome is each person's rate per person-year in the
    12 months from `month`; enrolment is being enrolled that month. A failed estimate gives its reason."""
    import pandas as pd

    rows = panel[pd.to_datetime(panel["cohort"]) == pd.Timestamp(month)]
    rows = rows.merge(scores[["person_id", "score"]], on="person_id", how="inner")
    rows = rows[rows["post_years"] > 0]
    out: dict = {"cutoff": float(cutoff), "month": str(pd.Timestamp(month).date()), "people_scored": int(len(rows))}
    for outcome in outcomes:
        try:
            rd = regression_discontinuity(
                rows["score"].to_numpy(float),
                (rows[f"post_{outcome}"] / rows["post_years"]).to_numpy(float),
                rows["treated"].to_numpy(float),
                cutoff,
                draws=draws,
                seed=seed,
                share=share,
            )
            out[outcome] = rd.as_dict()
        except DiscontinuityError as exc:
            out[outcome] = {"error": str(exc)}
    return out
