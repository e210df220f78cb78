"""Performance for everyone, beside the ratios between groups: overall AUROC, calibration in the large,
calibration slope and observed/expected outcomes, with bootstrap intervals, and a flag when the score is
miscalibrated for everyone (ratios between groups cannot see a score that over-predicts every group 4x).

Point estimates are exact (from the person rows); intervals come from a Poisson bootstrap of the counts by
(outcome, score bin), as in `engine`, with the binned AUROC, slope and intercept shifted to the exact values.
"""

from __future__ import annotations

import numpy as np

from evaluation.fairness import engine
from evaluation.fairness.config import AuditConfig
from evaluation.fairness.judging import _num
from evaluation.fairness.results import AbsoluteResult, Comparison, MetricValue
from evaluation.metrics import calibration_slope_intercept
from phm.core.stats import auroc

SHIFTED = ("auroc", "calibration_slope", "calibration_in_the_large")


def _intercept(x: np.ndarray, events: np.ndarray, trials: np.ndarray, iters: int = 40) -> float:
    """Calibration in the large on binned data: a with sum(events) = sum(trials * sigmoid(a + x))."""
    a = 0.0
    total = events.sum()
    for _ in range(iters):
        mu = 1 / (1 + np.exp(-np.clip(a + x, -30, 30)))
        w = (trials * mu * (1 - mu)).sum()
        if w <= 0:
            return float("nan")
        step = (total - (trials * mu).sum()) / w
        a += step
        if abs(step) < 1e-10:
            break
    return float(a)


def _binned(n: np.ndarray, p_sum: np.ndarray, l_sum: np.ndarray) -> dict[str, float]:
    """Metrics of everyone from counts n[outcome, bin] and sums of risk and of logit risk per bin."""
    pos, neg = n[1], n[0]
    P, N = pos.sum(), neg.sum()
    trials = n.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        below = np.cumsum(neg) - neg
        x = np.where(trials > 0, l_sum.sum(0) / trials, 0.0)
        slope = engine._binned_slope(x[None, :], pos[None, :], trials[None, :])[0]
        return {
            "auroc": float((pos * (below + 0.5 * neg)).sum() / (P * N)),
            "observed_to_expected": float(P / p_sum.sum()),
            "calibration_slope": float(slope),
            "calibration_in_the_large": _intercept(x, pos, trials),
            "mean_predicted": float(p_sum.sum() / (P + N)),
            "event_rate": float(P / (P + N)),
        }


def absolute_performance(
    y: np.ndarray,
    p: np.ndarray,
    bins: np.ndarray,
    nbins: int,
    cfg: AuditConfig,
    seed: int,
    probabilities: bool = True,
    cluster: np.ndarray | None = None,
) -> AbsoluteResult:
    """Overall performance of scores `p` against outcomes `y` (bins: each row's score bin). Scores that are not
    probabilities get discrimination only (AUROC); calibration needs probabilities. `cluster`: each row's person
    (0..k-1) when people have several rows: the bootstrap then resamples people, not rows."""
    lp = engine.logit(p)
    key = y.astype(np.int64) * nbins + bins
    n = np.bincount(key, minlength=2 * nbins).astype(float).reshape(2, nbins)
    p_sum = np.bincount(key, weights=p, minlength=2 * nbins).reshape(2, nbins)
    l_sum = np.bincount(key, weights=lp, minlength=2 * nbins).reshape(2, nbins)
    slope, citl = calibration_slope_intercept(y, p)
    exact = {
        "auroc": auroc(y, p),
        "observed_to_expected": float(y.sum() / p.sum()),
        "calibration_slope": slope,
        "calibration_in_the_large": citl,
        "mean_predicted": float(p.mean()),
        "event_rate": float(y.mean()),
    }
    if cluster is None:
        return from_counts(n, p_sum, l_sum, cfg, seed, probabilities, exact)
    people = int(cluster.max()) + 1

    def by_person(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        w = rng.poisson(1.0, people).astype(float)[cluster]
        n_, p_, l_ = (np.bincount(key, weights=w * v, minlength=2 * nbins).reshape(2, nbins) for v in (1.0, p, lp))
        return n_, p_, l_

    return from_counts(n, p_sum, l_sum, cfg, seed, probabilities, exact, resample=by_person)


def from_counts(
    n: np.ndarray,
    p_sum: np.ndarray,
    l_sum: np.ndarray,
    cfg: AuditConfig,
    seed: int,
    probabilities: bool,
    exact: dict[str, float] | None = None,
    resample=None,
) -> AbsoluteResult:
    """Overall performance from counts n[outcome, score bin] and sums of risk and logit risk per bin (as aggregated
    on Spark). Without `exact` point estimates, the binned ones are reported (AUROC ties within a bin count half).
    `resample(rng)`: one bootstrap draw of (n, p_sum, l_sum) by person; by default the cells are resampled (one
    row per person)."""
    binned = _binned(n, p_sum, l_sum)
    exact = exact or binned
    nbins = n.shape[1]
    flat = n.ravel()
    nz = np.flatnonzero(flat)
    mean_p, mean_l = p_sum.ravel()[nz] / flat[nz], l_sum.ravel()[nz] / flat[nz]
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {k: [] for k in exact}
    for _ in range(cfg.bootstrap_draws):
        if resample is not None:
            drawn = _binned(*resample(rng))
        else:
            c = np.zeros(flat.size)
            c[nz] = rng.poisson(flat[nz])
            ps, ls = np.zeros(flat.size), np.zeros(flat.size)
            ps[nz], ls[nz] = c[nz] * mean_p, c[nz] * mean_l
            drawn = _binned(c.reshape(2, nbins), ps.reshape(2, nbins), ls.reshape(2, nbins))
        for k, v in drawn.items():
            draws[k].append(v)
    judged = 1 - (1 - cfg.level) / 2 if cfg.simultaneous else cfg.level  # two judged: O/E and slope
    metrics, intervals = {}, {}
    for k, point in exact.items():
        d = np.asarray(draws[k])
        shift = point - binned[k] if k in SHIFTED and np.isfinite(binned[k]) else 0.0
        lo, hi = engine.interval(d[:, None], cfg.level)
        metrics[k] = MetricValue(value=_num(point), ci=(_num(lo[0] + shift), _num(hi[0] + shift)))
        jl, jh = engine.interval(d[:, None], judged)
        intervals[k] = (_num(jl[0] + shift), _num(jh[0] + shift))
    if not probabilities:
        return AbsoluteResult(metrics={"auroc": metrics["auroc"]}, bands={})
    bands = {"observed_to_expected": tuple(cfg.calibration_tolerance), "calibration_slope": tuple(cfg.slope_tolerance)}
    flags = []
    for k, (lo_b, hi_b) in bands.items():
        value, (lo, hi) = exact[k], intervals[k]
        if not np.isfinite(value) or lo is None or hi is None or lo_b <= value <= hi_b or lo <= 1 <= hi:
            continue
        if k == "observed_to_expected":
            flags.append(
                Comparison(
                    grouping="overall",
                    group="everyone",
                    metric="observed_to_expected",
                    value=exact["event_rate"],
                    reference_group="mean predicted risk",
                    reference_value=exact["mean_predicted"],
                    ratio=value,
                    ratio_ci=(lo, hi),
                    ratio_ci_level=judged,
                    difference=exact["event_rate"] - exact["mean_predicted"],
                    status="flag",
                )
            )
        else:
            flags.append(
                Comparison(
                    grouping="overall",
                    group="everyone",
                    metric="overall_calibration_slope",
                    value=value,
                    reference_group="ideal slope",
                    reference_value=1.0,
                    ratio=value,
                    ratio_ci=(lo, hi),
                    ratio_ci_level=judged,
                    difference=value - 1,
                    status="flag",
                )
            )
    return AbsoluteResult(metrics=metrics, bands=bands, flags=flags)
