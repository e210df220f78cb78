"""Performance of a risk score: discrimination, calibration, clinical usefulness, top-k policies.

All functions take outcomes `y` (0/1) and predicted probabilities `p` as NumPy arrays.
Bootstrap intervals resample people with a fixed seed, so results are reproducible.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel
from sklearn.metrics import average_precision_score

from phm.core.stats import auroc

EPS = 1e-6
__all__ = [
    "auroc",
    "auprc",
    "brier",
    "calibration_slope_intercept",
    "calibration_curve",
    "net_benefit",
    "top_k",
    "bootstrap_ci",
    "bootstrap_discrimination",
    "evaluate",
    "Performance",
]


def auprc(y: np.ndarray, p: np.ndarray) -> float:
    y = np.asarray(y, dtype=int)
    return float(average_precision_score(y, p)) if 0 < y.sum() < y.size else float("nan")


def brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((np.asarray(p) - np.asarray(y)) ** 2))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def _newton_logistic(
    X: np.ndarray, y: np.ndarray, offset: np.ndarray, iters: int = 50, weight: np.ndarray | None = None
) -> np.ndarray:
    """Unpenalised logistic regression by Newton-Raphson (small designs: 1-2 columns), rows optionally weighted."""
    beta = np.zeros(X.shape[1])
    rw = np.ones(y.size) if weight is None else np.asarray(weight, float)
    for _ in range(iters):
        eta = np.clip(X @ beta + offset, -30, 30)
        mu = 1 / (1 + np.exp(-eta))
        w = rw * mu * (1 - mu)
        grad = X.T @ (rw * (y - mu))
        hess = (X * w[:, None]).T @ X + 1e-9 * np.eye(X.shape[1])
        step = np.linalg.solve(hess, grad)
        beta += step
        if np.max(np.abs(step)) < 1e-10:
            break
    return beta


def calibration_slope_intercept(y: np.ndarray, p: np.ndarray, weight: np.ndarray | None = None) -> tuple[float, float]:
    """Calibration slope (logistic regression of y on logit p) and calibration-in-the-large intercept
    (intercept with logit p as offset), rows optionally weighted. Perfect calibration: slope 1, intercept 0."""
    y = np.asarray(y, dtype=float)
    lp = _logit(p)
    if y.sum() == 0 or y.sum() == y.size:
        return float("nan"), float("nan")
    slope = _newton_logistic(np.column_stack([np.ones_like(lp), lp]), y, np.zeros_like(lp), weight=weight)[1]
    intercept = _newton_logistic(np.ones((lp.size, 1)), y, lp, weight=weight)[0]
    return float(slope), float(intercept)


def calibration_curve(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict]:
    """Observed vs predicted risk by equal-size groups of predicted risk."""
    order = np.argsort(p, kind="stable")
    out = []
    for chunk in np.array_split(order, bins):
        if chunk.size:
            out.append(
                {"mean_predicted": float(np.mean(p[chunk])), "observed": float(np.mean(y[chunk])), "n": int(chunk.size)}
            )
    return out


def net_benefit(y: np.ndarray, p: np.ndarray, thresholds: np.ndarray) -> list[dict]:
    """Decision curve: net benefit of acting on p >= t, against treat-all and treat-none (0)."""
    y = np.asarray(y, dtype=bool)
    n, prev = y.size, y.mean()
    out = []
    for t in thresholds:
        flag = p >= t
        tp, fp = np.sum(flag & y), np.sum(flag & ~y)
        w = t / (1 - t)
        out.append(
            {
                "threshold": float(t),
                "model": float(tp / n - fp / n * w),
                "treat_all": float(prev - (1 - prev) * w),
                "treat_none": 0.0,
            }
        )
    return out


def top_k(y: np.ndarray, p: np.ndarray, shares: tuple[float, ...] = (0.01, 0.02, 0.05)) -> list[dict]:
    """Flag the highest-risk share of people: how many, PPV and sensitivity."""
    y = np.asarray(y, dtype=bool)
    order = np.argsort(-p, kind="stable")
    out = []
    for share in shares:
        k = max(1, int(round(share * y.size)))
        hit = y[order[:k]].sum()
        out.append(
            {
                "share": share,
                "flagged": int(k),
                "ppv": float(hit / k),
                "sensitivity": float(hit / max(y.sum(), 1)),
                "threshold": float(p[order[k - 1]]),
            }
        )
    return out


def bootstrap_ci(
    y: np.ndarray, p: np.ndarray, metric, draws: int = 200, seed: int = 1, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of `metric(y, p)` resampling people."""
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(draws):
        idx = rng.integers(0, y.size, y.size)
        value = metric(y[idx], p[idx])
        if np.isfinite(value):
            stats.append(value)
    if not stats:
        return float("nan"), float("nan")
    lo, hi = np.quantile(stats, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def bootstrap_discrimination(
    y: np.ndarray,
    p: np.ndarray,
    draws: int = 200,
    seed: int = 1,
    level: float = 0.95,
    person: np.ndarray | None = None,
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Bootstrap intervals of AUROC and AUPRC in one pass per draw.

    People are resampled with Poisson(1) weights (the standard large-sample form of the bootstrap),
    so the scores are sorted once and every draw is a few weighted cumulative sums, not a re-sort.
    `person`: each row's person when people have several rows (validation on several dates): one weight per
    person, shared by their rows.
    """
    y = np.asarray(y, dtype=bool)
    order = np.argsort(p, kind="stable")
    ys, ps = y[order], np.asarray(p)[order]
    starts = np.flatnonzero(np.r_[True, ps[1:] != ps[:-1]])  # groups of tied scores, ascending
    codes = None if person is None else np.unique(np.asarray(person), return_inverse=True)[1].ravel()[order]
    rng = np.random.default_rng(seed)
    aurocs, auprcs = [], []
    for _ in range(draws):
        if codes is None:
            w = rng.poisson(1.0, ys.size).astype(np.float64)
        else:
            w = rng.poisson(1.0, int(codes.max()) + 1).astype(np.float64)[codes]
        pos = np.add.reduceat(w * ys, starts)
        neg = np.add.reduceat(w * ~ys, starts)
        P, N = pos.sum(), neg.sum()
        if P == 0 or N == 0:
            continue
        below = np.cumsum(neg) - neg
        aurocs.append(float(np.sum(pos * (below + 0.5 * neg)) / (P * N)))
        tp = np.cumsum(pos[::-1])  # descending thresholds
        fp = np.cumsum(neg[::-1])
        precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
        auprcs.append(float(np.sum(pos[::-1] / P * precision)))
    q = [(1 - level) / 2, 1 - (1 - level) / 2]
    if not aurocs:
        return (float("nan"), float("nan")), (float("nan"), float("nan"))
    a, b = np.quantile(aurocs, q), np.quantile(auprcs, q)
    return (float(a[0]), float(a[1])), (float(b[0]), float(b[1]))


class Performance(BaseModel):
    """Everything the model card and MLflow record about one score on one data set."""

    n: int
    events: int
    event_rate: float
    auroc: float
    auroc_ci: tuple[float, float]
    auprc: float
    auprc_ci: tuple[float, float]
    brier: float
    calibration_slope: float
    calibration_intercept: float
    calibration_curve: list[dict]
    decision_curve: list[dict]
    top_k: list[dict]

    def flat(self, prefix: str = "") -> dict[str, float]:
        """Scalar metrics for MLflow (`val_auroc`, `val_ppv_top_1pct`, ...)."""
        out = {
            f"{prefix}{k}": float(getattr(self, k))
            for k in (
                "n",
                "events",
                "event_rate",
                "auroc",
                "auprc",
                "brier",
                "calibration_slope",
                "calibration_intercept",
            )
        }
        out[f"{prefix}auroc_ci_low"], out[f"{prefix}auroc_ci_high"] = self.auroc_ci
        out[f"{prefix}auprc_ci_low"], out[f"{prefix}auprc_ci_high"] = self.auprc_ci
        for row in self.top_k:
            pct = f"{row['share'] * 100:g}pct"
            out[f"{prefix}ppv_top_{pct}"] = row["ppv"]
            out[f"{prefix}sensitivity_top_{pct}"] = row["sensitivity"]
        return out


def evaluate(
    y: np.ndarray, p: np.ndarray, draws: int = 200, seed: int = 1, person: np.ndarray | None = None
) -> Performance:
    """Performance of `p` on `y`; intervals resample people (`person`: each row's, when some have several rows)."""
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    slope, intercept = calibration_slope_intercept(y, p)
    auroc_ci, auprc_ci = bootstrap_discrimination(y, p, draws, seed, person=person)
    top = float(np.quantile(p, 0.99)) if p.size else 0.5
    thresholds = np.unique(np.round(np.linspace(0.01, max(0.05, min(0.9, top)), 30), 4))
    return Performance(
        n=int(y.size),
        events=int(y.sum()),
        event_rate=float(y.mean()) if y.size else float("nan"),
        auroc=auroc(y, p),
        auroc_ci=auroc_ci,
        auprc=auprc(y, p),
        auprc_ci=auprc_ci,
        brier=brier(y, p),
        calibration_slope=slope,
        calibration_intercept=intercept,
        calibration_curve=calibration_curve(y, p),
        decision_curve=net_benefit(y, p, thresholds),
        top_k=top_k(y, p),
    )
