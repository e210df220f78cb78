"""Input drift (`serving.governance.monitoring_drift.psi`) on the predictors a risk model really has: 0/1 flags and
counts that are zero for most people, whose reference quantiles coincide. A shift off the common value must show
(it had scored 0: the value shared a bin with everything above it); the same distribution must not."""

from __future__ import annotations

import numpy as np
import pytest

from serving.governance.monitoring_config import MonitorConfig
from serving.governance.monitoring_drift import psi

ALERT = MonitorConfig().psi_alert
N = 20_000


def flag(rng: np.random.Generator, share: float) -> np.ndarray:
    return (rng.random(N) < share).astype(float)


def sparse_count(rng: np.random.Generator, share: float) -> np.ndarray:
    """Zero for most people, else one of many values (bed days in 12 months)."""
    return np.where(rng.random(N) < share, rng.integers(1, 200, N), 0).astype(float)


@pytest.mark.parametrize(
    "draw, before, after",
    [(flag, 0.05, 0.5), (flag, 0.02, 0.3), (sparse_count, 0.05, 0.4), (sparse_count, 0.08, 0.3)],
)
def test_a_shift_off_the_common_value_alerts(draw, before: float, after: float) -> None:
    rng = np.random.default_rng(5)
    reference = draw(rng, before)
    assert psi(reference, draw(rng, after)) > ALERT
    assert psi(reference, draw(rng, before)) < 0.01  # the same distribution, drawn again


def test_a_constant_reference_alerts_on_any_new_value() -> None:
    zeros = np.zeros(N)
    assert psi(zeros, np.full(N, 3.0)) > ALERT and psi(zeros, -np.ones(N)) > ALERT
    assert psi(zeros, zeros) == pytest.approx(0, abs=1e-12)


def test_missing_and_non_finite_values() -> None:
    rng = np.random.default_rng(6)
    values = rng.normal(size=N)
    gone = np.full(N, np.nan)
    assert psi(values, gone) > ALERT and psi(gone, values) > ALERT  # a feed that stopped, or started
    assert psi(gone, gone) == pytest.approx(0, abs=1e-12)
    with_inf = values.copy()
    with_inf[:10] = np.inf
    assert psi(with_inf, rng.normal(size=N)) < 0.01  # an infinite reference value does not break the bins
