"""Matched comparison: each enrolled person matched, at their enrolment month, to people not enrolled with a
similar propensity score (logistic regression on risk score, age, sex, deprivation, conditions and prior use),
exactly on the strata given (e.g. sex and prior admissions), nearest neighbours within a caliper."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import ThreadpoolController

from evaluation.programme.panel import design


class CalibrationError(ValueError):
    """Entropy balancing found no weights meeting the enrolled group's means."""


@dataclass(frozen=True)
class Matched:
    """The matched panel (see `estimators`) and what matching left out."""

    panel: pd.DataFrame
    enrolled: int
    unmatched: int
    caliper: float


def _one_thread():
    """BLAS held to one thread: the matrices here have a few dozen columns, so threads mostly wait (and spin, on
    a shared machine); the controller is found once (finding it costs more than a balancing step)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")


_CONTROLLER: ThreadpoolController | None = None


def propensity_logit(
    frame: pd.DataFrame, covariates: list[str], fit_rows: int = 200_000, seed: int = 0, c: float = 1.0
) -> np.ndarray:
    """Log-odds of enrolment for every row, from an L2-penalised logistic regression on standardised covariates
    (fitted on the enrolled and at most `fit_rows` comparison rows drawn at random) by Newton's method (sklearn's
    newton-cholesky, converged to 1e-8). Covariates (`panel.DERIVED` terms computed) are read one at a time, so a
    large pool never holds its whole design matrix."""
    mu, sd = np.zeros(len(covariates)), np.ones(len(covariates))
    for j, name in enumerate(covariates):
        v = design(frame, [name])[:, 0]
        mu[j], sd[j] = v.mean(), v.std()
    sd = np.where(sd > 0, sd, 1.0)
    y = frame["treated"].to_numpy()
    rng = np.random.default_rng(seed)
    controls = np.flatnonzero(y == 0)
    if controls.size > fit_rows:
        controls = rng.choice(controls, fit_rows, replace=False)
    fit = np.concatenate([np.flatnonzero(y == 1), controls])
    x = (design(frame.iloc[fit], covariates) - mu) / sd
    with _one_thread():
        model = LogisticRegression(C=c, solver="newton-cholesky", tol=1e-8, max_iter=100).fit(x, y[fit])
    coef = model.coef_[0] / sd
    out = np.full(len(frame), float(model.intercept_[0] - mu @ coef))
    for j, name in enumerate(covariates):
        out += coef[j] * design(frame, [name])[:, 0]
    return out


def match(
    frame: pd.DataFrame,
    covariates: list[str],
    exact: list[str],
    k: int = 5,
    caliper: float = 0.2,
    seed: int = 0,
    c: float = 1.0,
) -> Matched:
    """Match each enrolled row (`treated` == 1) to up to `k` comparison rows of the same `cohort` and `exact`
    values whose propensity log-odds lie within `caliper` standard deviations (nearest first, with replacement).
    Enrolled rows with no comparison within the caliper are dropped (counted in `unmatched`)."""
    if not isinstance(frame.index, pd.RangeIndex) or frame.index.start != 0 or frame.index.step != 1:
        frame = frame.reset_index(drop=True)
    logit = propensity_logit(frame, covariates, seed=seed, c=c)
    width = caliper * float(np.std(logit))
    keys = ["cohort", *exact]
    treated_rows, control_rows, set_ids, weights = [], [], [], []
    unmatched = 0
    for _key, rows in frame.groupby(keys, sort=True).indices.items():
        t = rows[frame["treated"].to_numpy()[rows] == 1]
        c = rows[frame["treated"].to_numpy()[rows] == 0]
        if t.size == 0:
            continue
        if c.size == 0:
            unmatched += t.size
            continue
        nn = NearestNeighbors(n_neighbors=min(k, c.size)).fit(logit[c, None])
        dist, pos = nn.kneighbors(logit[t, None])
        ok = dist <= width
        has = ok.any(axis=1)
        unmatched += int((~has).sum())
        for i in np.flatnonzero(has):
            chosen = c[pos[i][ok[i]]]
            treated_rows.append(t[i])
            control_rows.append(chosen)
            set_ids.append(t[i])
            weights.append(1.0 / chosen.size)
    if not treated_rows:
        raise ValueError("no enrolled person could be matched: too few comparison people in the data")
    t_idx = np.array(treated_rows)
    c_idx = np.concatenate(control_rows)
    c_set = np.repeat(set_ids, [c.size for c in control_rows])
    c_w = np.repeat(weights, [c.size for c in control_rows])
    panel = pd.concat(
        [frame.iloc[t_idx].assign(set_id=t_idx, weight=1.0), frame.iloc[c_idx].assign(set_id=c_set, weight=c_w)],
        ignore_index=True,
    )
    panel["logit"] = np.concatenate([logit[t_idx], logit[c_idx]])
    return Matched(panel, int((frame["treated"] == 1).sum()), unmatched, width)


def _dual(z: np.ndarray, base: np.ndarray, lam: np.ndarray) -> tuple[float, np.ndarray]:
    """The entropy-balancing dual log sum(base * exp(z @ lam)) and the weights it gives (summing to 1)."""
    a = z @ lam
    top = a.max()
    e = base * np.exp(a - top)
    s = e.sum()
    return float(np.log(s) + top), e / s


def _solve(
    z: np.ndarray, base: np.ndarray, lam: np.ndarray, inverse: np.ndarray | None = None, tol: float = 1e-9
) -> tuple[np.ndarray, float]:
    """Minimise the dual from `lam` by Newton's method with a backtracking line search: with `inverse` (the
    pseudo-inverse of a Hessian near the answer, e.g. the full sample's in a bootstrap) the steps reuse it while it
    keeps halving the gradient, else each step forms the Hessian (the weighted covariance of z, a few dozen columns).
    Returns the multipliers and the largest remaining gradient component (the moment gap, in SDs)."""
    f, p = _dual(z, base, lam)
    gap = np.inf
    for _ in range(100):
        g = p @ z
        last, gap = gap, float(np.abs(g).max())
        if gap < tol or not np.isfinite(gap):
            break
        if inverse is None or gap > 0.5 * last:
            inverse = None  # the fixed Hessian stopped paying: fresh ones from here on
            h = (z * p[:, None]).T @ z - np.outer(g, g)
            step = -np.linalg.pinv(h, rcond=1e-10, hermitian=True) @ g
        else:
            step = -inverse @ g
        t, slope = 1.0, float(g @ step)
        while True:
            trial = lam + t * step
            nf, npr = _dual(z, base, trial)
            if nf <= f + 1e-4 * t * slope + 1e-13 * (1 + abs(f)) or t < 1e-10:
                break
            t /= 2
        lam, f, p = trial, nf, npr
    return lam, gap


def _balance(x: np.ndarray, target: np.ndarray, w0: np.ndarray) -> np.ndarray | None:
    """Weights closest to `w0` (least Kullback-Leibler divergence) whose weighted means of `x` equal `target`,
    summing to `w0`'s total; None when there are none (no overlap)."""
    sd = x.std(axis=0)
    keep = sd > 0
    z = (x[:, keep] - target[keep]) / sd[keep]
    total = w0.sum()
    with np.errstate(over="ignore", invalid="ignore"), _one_thread():
        lam, gap = _solve(z, w0 / total, np.zeros(z.shape[1]))
        if not np.all(np.isfinite(lam)) or not gap <= 1e-3:
            return None
        return _dual(z, w0 / total, lam)[1] * total


def calibrate(matched: Matched, covariates: list[str]) -> Matched:
    """Entropy balancing after matching: the comparison rows' weights are moved as little as possible (least
    Kullback-Leibler divergence from the matching weights) so that their weighted means equal the enrolled
    group's on every covariate; each set keeps its enrolled person. Balance then holds by construction, so the
    balance table reports matching alone as well."""
    panel = matched.panel
    control = (panel["treated"] == 0).to_numpy()
    x = panel.loc[control, covariates].to_numpy(float)
    target = panel.loc[~control, covariates].to_numpy(float).mean(axis=0)
    w = _balance(x, target, panel.loc[control, "weight"].to_numpy(float))
    if w is None:
        raise CalibrationError("the comparison group cannot be weighted to the enrolled group's means (no overlap)")
    out = panel.copy()
    out.loc[control, "weight"] = w
    return Matched(out, matched.enrolled, matched.unmatched, matched.caliper)


class Reweigh:
    """For a person bootstrap of a matched panel (`estimators.bootstrap_sums`): each row's weight in a resample,
    with the entropy balancing done again on the resample (`calibrated`), so that the interval carries the
    uncertainty of the balancing weights, not only of the outcomes. `matching` holds the matching weights (before
    balancing). A resample that cannot be balanced gives NaN weights (the draw is left out).

    Fast for large panels: the comparison rows of one person at one month (a person matched to several enrolled
    people) share covariates and multiplicity, so the balancing sees each once with their summed weight (the
    answer is the same); and each resample starts from the full sample's multipliers and reuses its Hessian."""

    def __init__(self, panel: pd.DataFrame, matching: np.ndarray, covariates: list[str], calibrated: bool):
        self.treated = (panel["treated"] == 1).to_numpy()
        self.x = panel[covariates].to_numpy(float)
        self.matching = np.asarray(matching, float)
        self.calibrated = calibrated
        self.failed = 0
        self.control = np.flatnonzero(~self.treated)
        ids = np.arange(self.control.size)
        if "person_id" in panel.columns:
            keys = ["person_id", *(["cohort"] if "cohort" in panel.columns else [])]
            found = panel.iloc[self.control].groupby(keys, sort=False).ngroup().to_numpy()
            first = np.zeros(int(found.max()) + 1 if found.size else 0, dtype=np.int64)
            first[found[::-1]] = self.control[::-1]
            if np.array_equal(self.x[self.control], self.x[first][found]):  # the same covariates within a group
                ids = found
        self.group = ids
        first = np.zeros(int(ids.max()) + 1 if ids.size else 0, dtype=np.int64)
        first[ids[::-1]] = np.arange(ids.size)[::-1]
        self.first = first  # a comparison row of each group (its position among the comparison rows)
        self.xg = self.x[self.control[first]]
        self.scale = np.where(self.xg.std(axis=0) > 0, self.xg.std(axis=0), 1.0)
        self.rows_t = np.flatnonzero(self.treated)
        self.xt = self.x[self.rows_t]
        self.beta: np.ndarray | None = None  # the full sample's multipliers per unit of x
        self.inverse: np.ndarray | None = None
        if calibrated and self.control.size and self.treated.any():
            self.__call__(np.ones(self.treated.size), start=True)

    def __call__(self, multiplicity: np.ndarray, start: bool = False) -> np.ndarray:
        m = np.asarray(multiplicity, float)
        w = self.matching * m
        if not self.calibrated:
            return w
        mt, mc = m[self.rows_t], m[self.control]
        if not (mt > 0).any() or not np.array_equal(mc, mc[self.first][self.group]):
            return self._rowwise(m, w, self.treated & (m > 0))
        wc = w[self.control]
        gw = np.bincount(self.group, weights=wc, minlength=self.first.size)
        inc = gw > 0
        if not inc.any():
            return np.full(m.size, np.nan)
        with _one_thread():
            target = mt @ self.xt / mt.sum()
        z = self.xg[inc]
        keep = z.max(axis=0) > z.min(axis=0)  # a covariate with one value among the groups in is left out
        z -= target
        z /= self.scale
        if not keep.all():
            z = z[:, keep]
        total = gw.sum()
        base = gw[inc] / total
        lam0 = np.zeros(z.shape[1]) if self.beta is None else self.beta[keep] * self.scale[keep]
        inverse = None if self.inverse is None or not keep.all() else self.inverse
        with np.errstate(over="ignore", invalid="ignore"), _one_thread():
            lam, gap = _solve(z, base, lam0, inverse)
            if not np.all(np.isfinite(lam)) or not gap <= 1e-3:
                self.failed += 0 if start else 1
                return np.full(m.size, np.nan)
            p = _dual(z, base, lam)[1]
            if start and keep.all():
                self.beta = lam / self.scale
                h = (z * p[:, None]).T @ z - np.outer(p @ z, p @ z)
                self.inverse = np.linalg.pinv(h, rcond=1e-10, hermitian=True)
        ratio = np.zeros(self.first.size)
        ratio[inc] = p / base  # each group's balanced weight over its matching weight
        w[self.control] = wc * ratio[self.group]
        return w

    def _rowwise(self, m: np.ndarray, w: np.ndarray, t: np.ndarray) -> np.ndarray:
        """One resample balanced row by row (multiplicities that differ within a person's rows)."""
        c = ~self.treated & (w > 0)
        if not t.any() or not c.any():
            return np.full(m.size, np.nan)
        target = np.average(self.x[t], axis=0, weights=m[t])
        balanced = _balance(self.x[c], target, w[c])
        if balanced is None:
            self.failed += 1
            return np.full(m.size, np.nan)
        w[c] = balanced
        return w
