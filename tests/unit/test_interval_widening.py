"""Intervals widened by what the back-test's earlier intervals achieved (an adaptive conformal step): the
factor each day needed, the widened model, and the sequential rule - no look-ahead, never narrower, nothing
on too little evidence."""

from __future__ import annotations

import numpy as np
import pytest

from models.forecasting.intervals import ResidualModel, needed_widening
from training.demand_backtest import (
    MIN_WIDENING_DAYS,
    WIDENING_BOUNDS,
    needed,
    sequential_intervals,
    sequential_models,
    widening,
    widening_by_band,
)


def model(seed: int = 0) -> ResidualModel:
    z = np.sort(np.random.default_rng(seed).normal(0.3, 1.0, 4001))  # off-centre: the median is not the forecast
    return ResidualModel(4.0, 0.0, z)  # sigma 2 at every lead


def test_needed_widening_puts_the_outcome_on_the_edge_of_the_80_percent_interval() -> None:
    m, point = model(), np.full(5, 100.0)
    q = m.quantiles(point)
    mid, up, down = q[0.5][0], q[0.9][0] - q[0.5][0], q[0.5][0] - q[0.1][0]
    actual = np.array([q[0.9][0], q[0.1][0], mid, mid + 2 * up, np.nan])
    got = needed_widening(m, point, actual)
    assert got[:4] == pytest.approx([1.0, 1.0, 0.0, 2.0], abs=1e-9) and np.isnan(got[4])
    assert needed_widening(m, point, np.array([mid - 3 * down]))[0] == pytest.approx(3.0)
    assert needed_widening(m, point, q[0.975], level=0.95) == pytest.approx(np.ones(5))


def test_widened_model_scales_the_spread_about_its_median_and_keeps_exceedance_consistent() -> None:
    m, point = model(), np.full(3, 100.0)
    base, wide = m.quantiles(point), m.widened(1.5).quantiles(point)
    assert wide[0.5] == pytest.approx(base[0.5])
    for q in (0.025, 0.1, 0.9, 0.975):
        assert wide[q] - wide[0.5] == pytest.approx(1.5 * (base[q] - base[0.5]))
    assert m.widened(1.5).exceed_probability(point, float(wide[0.9][0]))[0] == pytest.approx(0.1, abs=0.001)
    assert needed_widening(m.widened(1.5), point, base[0.9])[0] == pytest.approx(1 / 1.5)


def test_the_80_and_95_percent_intervals_widen_each_by_its_own_factor_and_stay_nested() -> None:
    m, point = model(), np.full(4, 100.0)
    two = m.widened(np.array([[1.2, 1.0], [2.0, 1.0]]))  # levels x leads: the last lead repeats
    base, q = m.quantiles(point), two.quantiles(point)
    spread = {k: (q[k] - q[0.5]) / (base[k] - base[0.5]) for k in (0.1, 0.9, 0.025, 0.975)}
    assert spread[0.1] == pytest.approx([1.2, 1, 1, 1]) and spread[0.9] == pytest.approx([1.2, 1, 1, 1])
    assert spread[0.025] == pytest.approx([2.0, 1, 1, 1]) and spread[0.975] == pytest.approx([2.0, 1, 1, 1])
    for k, p in ((0.975, 0.025), (0.9, 0.1), (0.5, 0.5), (0.1, 0.9), (0.025, 0.975)):
        assert two.exceed_probability(point, float(q[k][0]))[0] == pytest.approx(p, abs=0.001)
    assert needed_widening(two, point, base[0.975], level=0.95)[0] == pytest.approx(0.5)
    inside = m.widened(np.array([[2.0], [1.0]])).quantiles(point)  # 95% asked narrower than the widened 80%
    assert (inside[0.975] >= inside[0.9]).all() and (inside[0.025] <= inside[0.1]).all()  # never inside it


def backtest(
    spread_after: int, factor: float, origins: int = 12, spacing: int = 14, horizon: int = 28, from_lead: int = 0
):
    """Forecast errors that are N(0, 1) per day, `factor` times larger on days from `spread_after` at leads from
    `from_lead` (0-based)."""
    rng = np.random.default_rng(7)
    starts = [200 + spacing * k for k in range(origins)]
    days = np.asarray(starts)[:, None] + np.arange(horizon)[None, :]
    grown = (days >= spread_after) & (np.arange(horizon)[None, :] >= from_lead)
    err = rng.normal(0, 1, days.shape) * np.where(grown, factor, 1.0)
    preds = np.full(days.shape, 50.0)
    return starts, preds, preds + err, err


def test_intervals_widen_after_the_errors_grow_using_only_days_known_by_each_origin() -> None:
    starts, preds, actual, err = backtest(spread_after=270, factor=3.0)
    seq, final = sequential_intervals(actual - preds, preds, actual, starts, window=8, bands=[7])
    assert final.shape == (2, 28) and final.min() > 1.5  # the latest windows' intervals held far less than promised
    k = starts.index(298)
    later = actual.copy()
    later[np.asarray(starts)[:, None] + np.arange(28)[None, :] >= 298] += 100.0  # what happens from origin k on
    seq_later, _ = sequential_intervals(later - preds, preds, later, starts, window=8, bands=[7])
    for j in range(k + 1):
        assert (seq[j] is None and seq_later[j] is None) or all(
            np.array_equal(seq[j][q], seq_later[j][q]) for q in seq[j]
        )


def test_on_steady_errors_the_80_percent_intervals_hold_80_percent_where_the_unwidened_ones_fall_short() -> None:
    starts, preds, actual, _ = backtest(spread_after=10**6, factor=1.0, origins=24)
    seq, _ = sequential_intervals(actual - preds, preds, actual, starts, window=8, bands=[7])
    base = sequential_models(actual - preds, starts, window=8)
    ks = [k for k in range(len(starts)) if seq[k] is not None]

    def held(qs: list[dict], lo: float, hi: float) -> float:
        low, high = np.vstack([q[lo] for q in qs]), np.vstack([q[hi] for q in qs])
        return float(np.mean((actual[ks] >= low) & (actual[ks] <= high)))

    widened, plain = [seq[k] for k in ks], [base[k].quantiles(preds[k]) for k in ks]
    got = {lvl: (held(widened, lo, hi), held(plain, lo, hi)) for lvl, lo, hi in ((80, 0.1, 0.9), (95, 0.025, 0.975))}
    assert 0.77 <= got[80][0] <= 0.83 and got[80][0] > got[80][1] + 0.02, got
    assert 0.93 <= got[95][0] <= 0.97 and got[95][0] > got[95][1], got


def test_never_narrower_and_nothing_on_too_few_known_days() -> None:
    starts, preds, actual, err = backtest(spread_after=10**6, factor=1.0)
    calm = actual.copy()
    calm[6:] = preds[6:] + 0.01 * err[6:]  # later errors far smaller: the earlier intervals over-cover
    _, final = sequential_intervals(calm - preds, preds, calm, starts, window=8, bands=[7])
    assert WIDENING_BOUNDS[0] == 1.0 and (final == 1.0).all()
    m = [model()] * 2
    short = np.full((2, 28), np.nan)
    short[0, : MIN_WIDENING_DAYS - 1] = 1000.0  # far outside, but one day short of the evidence needed
    assert (widening(needed(m, np.zeros((2, 28)), short), [0, 14], np.inf, 8, [7]) == 1.0).all()
    short[0, MIN_WIDENING_DAYS - 1] = 1000.0
    assert (widening(needed(m, np.zeros((2, 28)), short), [0, 14], np.inf, 8, [7]) == WIDENING_BOUNDS[1]).all()


def test_each_band_of_leads_is_widened_by_its_own_misses_and_the_forecast_keeps_its_shape() -> None:
    starts, preds, actual, _ = backtest(spread_after=330, factor=3.0, from_lead=7)  # days 8-28 only, lately
    _, final = sequential_intervals(actual - preds, preds, actual, starts, window=8, bands=[7])
    assert final.shape == (2, 28) and (final[:, :7] == final[:, :1]).all() and (final[:, 7:] == final[:, 7:8]).all()
    assert final[0, 0] < 1.1 and final[0, 7] > 1.4 and final[1, 7] > 1.4, final
    assert widening_by_band(final, [7, 28]) == {
        f"{lvl}%": {"1-7": round(final[row, 0], 3), "8-28": round(final[row, 7], 3)} for row, lvl in ((0, 80), (1, 95))
    }
    assert list(widening_by_band(np.ones((2, 90)), [7, 28])["95%"]) == ["1-7", "8-28", "29-90"]
    m, point = model(), np.full(28, 100.0)
    wide = m.widened(final)
    q, base = wide.quantiles(point), m.quantiles(point)
    assert (q[0.9] - q[0.5]) / (base[0.9] - base[0.5]) == pytest.approx(final[0])
    assert (q[0.975] - q[0.5]) / (base[0.975] - base[0.5]) == pytest.approx(final[1])
    assert wide.exceed_probability(point, float(q[0.9][20]))[20] == pytest.approx(0.1, abs=0.001)


def test_a_forecast_without_error_keeps_exact_intervals_that_hold_every_day() -> None:
    exact = ResidualModel(1e-9, 0.0, np.zeros(120))  # e.g. a flat series forecast perfectly
    point = np.full(3, 50.0)
    assert all((q == 50.0).all() for q in exact.widened(np.array([[2.0], [3.0]])).quantiles(point).values())
    assert (needed_widening(exact, point, point) == 0).all()
    starts, preds, _, _ = backtest(spread_after=10**6, factor=1.0)
    seq, final = sequential_intervals(np.zeros_like(preds), preds, preds, starts, window=8, bands=[7])
    assert (final == 1.0).all()
    assert all(s is None or (s[0.1] <= preds[k]).all() and (s[0.9] >= preds[k]).all() for k, s in enumerate(seq))
