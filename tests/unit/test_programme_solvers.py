"""The programme evaluation's solvers pinned to their definitions: the propensity model at the penalised
likelihood's optimum, and the bootstrap's fast entropy balancing (each person-month once, warm-started) giving the
weights of balancing every row from scratch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from evaluation.programme.matching import Reweigh, _balance, propensity_logit


def _frame(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 3000
    x1, x2 = rng.normal(size=n), rng.integers(0, 2, n)
    treated = (rng.random(n) < expit(-2.5 + 1.2 * x1 + 0.8 * x2)).astype(int)
    return pd.DataFrame({"person_id": np.arange(n), "cohort": 1, "treated": treated, "x1": x1, "x2": x2})


def test_the_propensity_model_is_at_the_penalised_likelihoods_optimum() -> None:
    frame = _frame()
    logit = propensity_logit(frame, ["x1", "x2"], c=1.0)
    x = frame[["x1", "x2"]].to_numpy(float)
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    # logit = z @ w + b: recover (w, b) and check the gradient of sum(log-loss) + |w|^2 / 2 vanishes
    design = np.column_stack([z, np.ones(len(z))])
    coef = np.linalg.lstsq(design, logit, rcond=None)[0]
    assert np.abs(design @ coef - logit).max() < 1e-9
    residual = expit(logit) - frame["treated"].to_numpy()
    gradient = design.T @ residual + np.r_[coef[:2], 0.0]
    assert np.abs(gradient).max() < 1e-6


def test_fast_rebalancing_gives_the_weights_of_balancing_every_row() -> None:
    rng = np.random.default_rng(3)
    t = pd.DataFrame({"cohort": 1, "person_id": range(80), "treated": 1, "x": rng.normal(1.0, 1, 80)})
    people = rng.integers(100, 220, 400)  # comparison people reused across match sets
    c = pd.DataFrame({"cohort": 1, "person_id": people, "treated": 0})
    c["x"] = np.sin(c["person_id"]) * 1.5 + 0.5  # one value per person
    panel = pd.concat([t, c], ignore_index=True)
    panel["male"] = (panel["person_id"] % 2).astype(int)
    matching = np.where(panel["treated"] == 1, 1.0, 0.2)
    fast = Reweigh(panel, matching, ["x", "male"], calibrated=True)
    units = pd.factorize(panel["person_id"])[0]
    treated, x = panel["treated"].to_numpy() == 1, panel[["x", "male"]].to_numpy(float)
    for row in np.random.default_rng(5).poisson(1.0, size=(20, units.max() + 1)):
        m = row[units].astype(float)
        w = fast(m)
        c_rows = ~treated & (m > 0)
        slow = _balance(x[c_rows], np.average(x[treated], axis=0, weights=m[treated]), (matching * m)[c_rows])
        assert slow is not None
        np.testing.assert_allclose(w[c_rows], slow, rtol=1e-7)
        assert np.all(w[~treated & (m == 0)] == 0) and np.array_equal(w[treated], m[treated])
    assert fast.failed == 0


def test_balancing_without_overlap_fails_closed() -> None:
    x = np.array([[0.0], [1.0], [2.0]])
    assert _balance(x, np.array([5.0]), np.ones(3)) is None
    w = _balance(x, np.array([1.5]), np.ones(3))
    assert w.sum() == pytest.approx(3.0, rel=1e-12) and np.average(x[:, 0], weights=w) == pytest.approx(1.5, abs=1e-9)
    assert w[1] ** 2 == pytest.approx(w[0] * w[2], rel=1e-9)  # an exponential tilt of equal weights
