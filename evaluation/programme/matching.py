"""Matched comparison: each enrolled person matched, at their enrolment month, to people not enrolled with a
similar propensity score (logistic regression on risk score, age, sex, deprivation, conditions and prior use),
exactly on the strata given (e.g. sex and prior admissions), nearest neighbours within a caliper."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestNeighbors


class CalibrationError(ValueError):
    """Entropy balancing found no weights meeting the enrolled group's means."""


@dataclass(frozen=True)
class Matched:
    """The matched panel (see `estimators`) and what matching left out."""

    panel: pd.DataFrame
    enrolled: int
    unmatched: int
    caliper: float


def propensity_logit(frame: pd.DataFrame, covariates: list[str], fit_rows: int = 200_000, seed: int = 0,
                     c: float = 1.0) -> np.ndarray:
    """Log-odds of enrolment for every row, from a logistic regression on standardised covariates (fitted on the
    enrolled and at most `fit_rows` comparison rows drawn at random)."""
    x = frame[covariates].to_numpy(float)
    mu, sd = x.mean(axis=0), x.std(axis=0)
    x = (x - mu) / np.where(sd > 0, sd, 1.0)
    y = frame["treated"].to_numpy()
    rng = np.random.default_rng(seed)
    controls = np.flatnonzero(y == 0)
    if controls.size > fit_rows:
        controls = rng.choice(controls, fit_rows, replace=False)
    fit = np.concatenate([np.flatnonzero(y == 1), controls])
    model = LogisticRegression(C=c, max_iter=3000).fit(x[fit], y[fit])
    return model.decision_function(x)


def match(frame: pd.DataFrame, covariates: list[str], exact: list[str], k: int = 5, caliper: float = 0.2,
          seed: int = 0, c: float = 1.0) -> Matched:
    """Match each enrolled row (`treated` == 1) to up to `k` comparison rows of the same `cohort` and `exact`
    values whose propensity log-odds lie within `caliper` standard deviations (nearest first, with replacement).
    Enrolled rows with no comparison within the caliper are dropped (counted in `unmatched`)."""
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
    panel = pd.concat([frame.iloc[t_idx].assign(set_id=t_idx, weight=1.0),
                       frame.iloc[c_idx].assign(set_id=c_set, weight=c_w)], ignore_index=True)
    panel["logit"] = np.concatenate([logit[t_idx], logit[c_idx]])
    return Matched(panel, int((frame["treated"] == 1).sum()), unmatched, width)


def _balance(x: np.ndarray, target: np.ndarray, w0: np.ndarray) -> np.ndarray | None:
    """Weights closest to `w0` (least Kullback-Leibler divergence) whose weighted means of `x` equal `target`,
    summing to `w0`'s total; None when there are none (no overlap)."""
    from scipy.optimize import minimize

    sd = x.std(axis=0)
    keep = sd > 0
    z = (x[:, keep] - target[keep]) / sd[keep]
    total = w0.sum()
    base = w0 / total

    def dual(lam: np.ndarray) -> tuple[float, np.ndarray]:
        a = z @ lam
        m = a.max()
        e = base * np.exp(a - m)
        s = e.sum()
        return float(np.log(s) + m), (e / s) @ z

    with np.errstate(over="ignore", invalid="ignore"):
        res = minimize(dual, np.zeros(z.shape[1]), jac=True, method="BFGS", options={"maxiter": 500, "gtol": 1e-8})
    if not np.all(np.isfinite(res.x)) or np.abs(dual(res.x)[1]).max() > 1e-3:
        return None
    a = z @ res.x
    w = base * np.exp(a - a.max())
    return w / w.sum() * total


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
    balancing). A resample that cannot be balanced gives NaN weights (the draw is left out)."""

    def __init__(self, panel: pd.DataFrame, matching: np.ndarray, covariates: list[str], calibrated: bool):
        self.treated = (panel["treated"] == 1).to_numpy()
        self.x = panel[covariates].to_numpy(float)
        self.matching = np.asarray(matching, float)
        self.calibrated = calibrated
        self.failed = 0

    def __call__(self, multiplicity: np.ndarray) -> np.ndarray:
        m = np.asarray(multiplicity, float)
        w = self.matching * m
        if not self.calibrated:
            return w
        c, t = ~self.treated & (w > 0), self.treated & (m > 0)
        if not t.any() or not c.any():
            return np.full(m.size, np.nan)
        target = np.average(self.x[t], axis=0, weights=m[t])
        balanced = _balance(self.x[c], target, w[c])
        if balanced is None:
            self.failed += 1
            return np.full(m.size, np.nan)
        w[c] = balanced
        return w
