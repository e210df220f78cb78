"""Input drift (`serving.governance.monitoring_drift.psi`) on the predictors a risk model really has: 0/1 flags and
counts that are zero for most people, whose reference quantiles coincide. A shift off the common value must show
(it had scored 0: the value shared a bin with everything above it); the same distribution must not, in a whole
population or in a group of a few hundred people (whose PSIs cross the thresholds by chance)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from serving.governance.monitoring_config import MonitorConfig
from serving.governance.monitoring_drift import input_drift, psi

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


PREDICTORS = [f"x{i}" for i in range(8)]


def population(rng: np.random.Generator, sizes: dict[str, int], shift: float = 0.0) -> pd.DataFrame:
    """People with 8 standard normal predictors; those of ethnic category M (broad group Black) moved by `shift`."""
    parts = []
    for code, n in sizes.items():
        part = pd.DataFrame(rng.normal(shift if code == "M" else 0, 1, (n, len(PREDICTORS))), columns=PREDICTORS)
        parts.append(part.assign(ethnic_category=code))
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def model() -> LogisticRegression:
    rng = np.random.default_rng(0)
    train = population(rng, {"A": 2_000})
    return LogisticRegression().fit(train[PREDICTORS], (train.x0 + rng.normal(size=2_000) > 1).astype(int))


def test_a_small_group_does_not_alarm_on_sampling_noise(model: LogisticRegression) -> None:
    """250 Black people drawn twice from one distribution: their PSIs cross the group threshold (0.15) by chance
    (6 of these 20 runs had alerted, 'retraining due'); an alert now needs the PSI beyond what sampling gives."""
    cfg = MonitorConfig(clock_features={})
    sizes = {"A": 20_000, "M": 250}
    alarmed = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        found = input_drift(model, PREDICTORS, population(rng, sizes), population(rng, sizes), 0, cfg).alerts
        alarmed += [(seed, a.subject, round(a.value, 3)) for a in found]
    assert alarmed == []


def test_a_real_shift_in_a_small_group_still_alerts(model: LogisticRegression) -> None:
    rng = np.random.default_rng(99)
    sizes = {"A": 20_000, "M": 250}
    found = input_drift(
        model,
        PREDICTORS,
        population(rng, sizes),
        population(rng, sizes, shift=0.8),
        0,
        MonitorConfig(clock_features={}),
    ).alerts
    moved = {a.subject for a in found if a.metric == "psi_by_group"}
    assert len(moved) == 5 and all(s.startswith("Ethnicity (broad group): Black: x") for s in moved)  # its top 5
    assert any(a.metric == "score_psi_by_group" and a.subject.endswith("Black") for a in found)
    assert not any("White" in a.subject for a in found)  # the unchanged group stays quiet
