"""Group metrics and their bootstrap distribution from a compact table of counts.

Every metric the audit reports (selection rate, TPR, FNR, FPR and PPV at the operating threshold,
predicted-to-observed ratio, AUROC, calibration slope) can be computed from counts of people by
(group, age-sex stratum, outcome, score bin), plus the sums of predicted risk and of its logit in each
cell, provided the operating threshold is a bin edge (it is made one).

That makes a 1,000-draw bootstrap cheap. Under the Poisson bootstrap (each person weighted by an
independent Poisson(1) draw) the resampled count of a cell is Poisson(count), independently across
cells, so one draw is one Poisson variate per non-empty cell, not one per person. When a person
contributes several rows (flare-up person-days), weights are drawn per person and summed into the
cells instead (exact; costs one pass over the rows per draw).

Point estimates are computed exactly from the person rows (see `exact.py`, with fairlearn); the
binned AUROC and calibration slope of the bootstrap are shifted by their small binning error.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

EPS = 1e-6


@dataclass(frozen=True)
class Binning:
    """Quantile bins of the score. Bin k holds edges[k-1] <= p < edges[k]."""

    edges: np.ndarray

    @property
    def nbins(self) -> int:
        return self.edges.size + 1

    def index(self, p: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.edges, p, side="right")

    def first_selected(self, threshold: float) -> int:
        """Bins from this index on hold exactly the rows with p >= threshold (threshold is an edge)."""
        return int(np.searchsorted(self.edges, threshold, side="left")) + 1


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    return np.log(p / (1 - p))


@dataclass
class Cells:
    """Counts (n), risk sums and logit sums by group x stratum x outcome x bin."""

    n: np.ndarray
    p_sum: np.ndarray
    logit_sum: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return self.n.shape


def cell_keys(
    group: np.ndarray, stratum: np.ndarray, y: np.ndarray, bin_index: np.ndarray, shape: tuple[int, int, int, int]
) -> np.ndarray:
    G, S, Y, B = shape
    return ((group.astype(np.int64) * S + stratum) * Y + y) * B + bin_index


def tabulate(
    keys: np.ndarray, p: np.ndarray, lp: np.ndarray, shape: tuple[int, int, int, int], weights: np.ndarray | None = None
) -> Cells:
    size = int(np.prod(shape))
    w = np.ones(keys.size) if weights is None else weights
    n = np.bincount(keys, weights=w, minlength=size)
    return Cells(
        n.reshape(shape),
        np.bincount(keys, weights=w * p, minlength=size).reshape(shape),
        np.bincount(keys, weights=w * lp, minlength=size).reshape(shape),
    )


SLOPE_BINS = 25  # coarse bins of the score for the calibration slope inside the bootstrap


def _binned_slope(x: np.ndarray, events: np.ndarray, trials: np.ndarray, iters: int = 30) -> np.ndarray:
    """Calibration slope per group: logistic regression of the outcome on logit p, on binned data.
    x, events, trials: (G, B). Newton-Raphson vectorised over groups; NaN where it does not converge."""
    x = np.where(trials > 0, x, 0.0)
    b0 = np.zeros(x.shape[0])
    b1 = np.ones(x.shape[0])
    with np.errstate(all="ignore"):
        for _ in range(iters):
            mu = 1 / (1 + np.exp(-np.clip(b0[:, None] + b1[:, None] * x, -30, 30)))
            r = events - trials * mu
            w = trials * mu * (1 - mu)
            g0, g1 = r.sum(1), (r * x).sum(1)
            h00, h01, h11 = w.sum(1), (w * x).sum(1), (w * x * x).sum(1)
            det = h00 * h11 - h01**2
            d0 = (h11 * g0 - h01 * g1) / det
            d1 = (h00 * g1 - h01 * g0) / det
            ok = np.isfinite(d0) & np.isfinite(d1)
            b0 = np.where(ok, np.clip(b0 + np.where(ok, d0, 0), -50, 50), b0)
            b1 = np.where(ok, np.clip(b1 + np.where(ok, d1, 0), -50, 50), b1)
            if np.max(np.abs(np.where(ok, np.r_[d0, d1][: d0.size], 0)), initial=0) < 1e-9:
                break
    return np.where(np.abs(b1) < 50, b1, np.nan)


@lru_cache(maxsize=64)
def _block_starts(length: int, parts: int) -> np.ndarray:
    return np.unique(np.linspace(0, length, parts + 1).astype(int)[:-1])


def _coarse(a: np.ndarray, parts: int) -> np.ndarray:
    """Sum the last axis into `parts` contiguous blocks."""
    return np.add.reduceat(a, _block_starts(a.shape[-1], parts), axis=-1)


def summarise(cells: Cells, sel_from: int, with_slope: bool = True) -> dict[str, np.ndarray]:
    """Per-group metrics (arrays over the group axis) from cell counts."""
    n = cells.n.sum(1)  # (G, 2, B)
    pos, neg = n[:, 1], n[:, 0]
    P, N = pos.sum(-1), neg.sum(-1)
    total = P + N
    tp, fp = pos[:, sel_from:].sum(-1), neg[:, sel_from:].sum(-1)
    expected = cells.p_sum.sum((1, 2, 3))
    below = np.cumsum(neg, -1) - neg
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {
            "n": total,
            "events": P,
            "event_rate": P / total,
            "mean_predicted": expected / total,
            "predicted_to_observed": expected / P,
            "selection_rate": (tp + fp) / total,
            "tpr": tp / P,
            "fnr": 1 - tp / P,
            "fpr": fp / N,
            "ppv": tp / (tp + fp),
            "auroc": (pos * (below + 0.5 * neg)).sum(-1) / (P * N),
        }
        if with_slope:
            trials = _coarse(n.sum(1), SLOPE_BINS)
            x = _coarse(cells.logit_sum.sum((1, 2)), SLOPE_BINS) / trials
            slope = _binned_slope(x, _coarse(pos, SLOPE_BINS), trials)
            out["calibration_slope"] = np.where((P > 0) & (N > 0), slope, np.nan)
    return out


def standardised_reference(cells: Cells, ref: int) -> tuple[Cells, np.ndarray]:
    """The reference group's cells re-weighted, for each group in turn, to that group's age-sex mix
    (direct standardisation), collapsed over strata. Also returns, per group, the share of its people
    in strata the reference group lacks (those cannot be standardised)."""
    G, S, Y, B = cells.shape
    mix = cells.n.sum((2, 3))  # (G, S)
    share = mix / np.maximum(mix.sum(1, keepdims=True), 1e-12)
    ref_share = share[ref]
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(ref_share[None, :] > 0, share / ref_share[None, :], 0.0)  # (G, S)
    uncovered = (share * (ref_share[None, :] == 0)).sum(1)

    def apply(a: np.ndarray) -> np.ndarray:
        return (w @ a[ref].reshape(S, Y * B)).reshape(G, 1, Y, B)

    return Cells(apply(cells.n), apply(cells.p_sum), apply(cells.logit_sum)), uncovered


@dataclass
class Draws:
    """Bootstrap draws (draws x groups) of each metric, of its ratio to the reference group, and of
    its ratio to the age-sex standardised reference."""

    metric: dict[str, np.ndarray]
    ratio: dict[str, np.ndarray]
    adjusted_ratio: dict[str, np.ndarray]


def bootstrap(
    cells: Cells,
    sel_from: int,
    ref: int,
    draws: int,
    rng: np.random.Generator,
    adjust: bool,
    rows: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> Draws:
    """Poisson bootstrap over people. `rows` = (cell keys, cluster index, p, logit p) when people
    have several rows; otherwise cells are resampled directly."""
    shape = cells.shape
    metric: dict[str, list] = {}
    ratio: dict[str, list] = {}
    adjusted: dict[str, list] = {}
    if rows is None:
        flat_n = cells.n.ravel()
        nz = np.flatnonzero(flat_n)
        mean_p = cells.p_sum.ravel()[nz] / flat_n[nz]
        mean_l = cells.logit_sum.ravel()[nz] / flat_n[nz]
    else:
        keys, cluster, p, lp = rows
        n_clusters = int(cluster.max()) + 1 if cluster.size else 0
    for _ in range(draws):
        if rows is None:
            c = rng.poisson(flat_n[nz]).astype(float)
            n_ = np.zeros(flat_n.size)
            ps, ls = np.zeros(flat_n.size), np.zeros(flat_n.size)
            n_[nz], ps[nz], ls[nz] = c, c * mean_p, c * mean_l
            draw = Cells(n_.reshape(shape), ps.reshape(shape), ls.reshape(shape))
        else:
            w = rng.poisson(1.0, n_clusters).astype(float)[cluster]
            draw = tabulate(keys, p, lp, shape, weights=w)
        m = summarise(draw, sel_from)
        if adjust:
            std, _ = standardised_reference(draw, ref)
            m_ref = summarise(std, sel_from, with_slope=False)
        with np.errstate(divide="ignore", invalid="ignore"):
            for k, v in m.items():
                metric.setdefault(k, []).append(v)
                ratio.setdefault(k, []).append(v / v[ref])
                if adjust:
                    adjusted.setdefault(k, []).append(v / m_ref[k] if k in m_ref else np.full_like(v, np.nan))
    stack = lambda d: {k: np.vstack(v) for k, v in d.items()}  # noqa: E731
    return Draws(stack(metric), stack(ratio), stack(adjusted))


def interval(draws: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval per column, ignoring undefined draws."""
    q = [(1 - level) / 2, 1 - (1 - level) / 2]
    with np.errstate(all="ignore"):
        finite = np.where(np.isfinite(draws), draws, np.nan)
        ok = np.isfinite(finite).sum(0) >= max(10, draws.shape[0] // 10)
        lo, hi = np.full(draws.shape[1], np.nan), np.full(draws.shape[1], np.nan)
        if ok.any():
            qs = np.nanquantile(finite[:, ok], q, axis=0)
            lo[ok], hi[ok] = qs[0], qs[1]
    return lo, hi
