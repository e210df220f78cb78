"""Benchmark (an experiment): do models fitted across all the series at once beat the per-series pool at days 1-28
on the real bed-occupancy series?

Same data and protocol as `benchmarks.forecast_real` (40 US states, rolling origins every 14 days over the last
120 days, 28 days ahead, data up to each origin only), on two periods in the same run: the default one (data to
2021-07-31) and the winter before (data to 2021-04-17), so a method tuned on one can be seen to hold, or not, on
the other. Every candidate is fitted at each origin on every series' history up to that origin; what it learns
from the panel comes from back-test windows complete before the origin (weekly origins from day 112):

* `global gbm` / `global ridge`: LightGBM / ridge on the log ratio of the actual to the weekly-level forecast,
  features the series' week-on-week momentum, the level's distance from last week's mean, lead and weekday; the
  correction shrunk by half;
* `pooled damped trend`: the weekly level times a damped trend of the last weeks' change, the trend's weight,
  damping and span chosen by the panel's median MASE at days 1-28 over the last 12 windows;
* `pooled weights` / `pooled nnls` / `pooled select`: the pool's members (weekly level, AutoETS, MSTL,
  harmonic-AR) combined per band of leads (days 1-7, 8-28) with weights from the whole panel's back-test
  (1/median MASE^2; non-negative least squares) or the panel's best member per band.

Figures: median MASE at days 1-7 and 1-28 as a share of the weekly seasonal naive's, per candidate and period;
target: some global or pooled candidate at most 0.85 at days 1-28 on both periods. Results with the machine's
facts to `benchmarks/results/forecast_global.json`.

Usage::

    .venv/bin/python -m benchmarks.forecast_global [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
import pandas as pd

from benchmarks.forecast_real import DATA, HORIZON, LOOKBACK, SPACING, TARGET_RATIO
from benchmarks.measure import Figure, Run, Target, add_trial

PERIODS = {"to 2021-07-31": None, "to 2021-04-17": "2021-04-17"}
MEMBERS = ("weekly_level", "auto_ets", "mstl", "harmonic_ar")
FIRST, STEP, PAST = 112, 7, 12  # training windows: weekly origins from day 112; the last 12 complete ones
BANDS = ((0, 7), (7, 28))
SHRINK = 0.5
TREND_GRID = [(b, phi, w) for b in (0, 0.25, 0.5, 0.75, 1.0) for phi in (0.85, 0.9, 0.95, 0.98) for w in (1, 2)]
GLOBAL = ("global gbm", "global ridge", "pooled damped trend", "pooled weights", "pooled nnls", "pooled select")


def outer_origins(n: int) -> list[int]:
    return list(range(n - LOOKBACK, n - HORIZON + 1, SPACING))


def member_forecasts(args: tuple) -> dict[tuple[str, int], np.ndarray]:
    """Every member's forecast of one series from every weekly origin and every outer origin (BLAS on one thread)."""
    from threadpoolctl import threadpool_limits

    from models.forecasting.pool import FORECASTERS

    values, capacity, origins = args
    with threadpool_limits(limits=1, user_api="blas"):
        return {
            (m, t): FORECASTERS[m]("US").fit(values.iloc[:t], capacity).predict(HORIZON)
            for t in origins
            for m in MEMBERS
        }


class Panel:
    """The series (same dates), their member forecasts by origin, and the MASE scale before each origin."""

    def __init__(self, values: list[np.ndarray], dates: pd.DatetimeIndex, forecasts: list[dict]) -> None:
        self.y, self.dates, self.f = values, dates, forecasts
        self.n_series = len(values)

    def scale(self, i: int, t: int) -> float:
        y = self.y[i][:t]
        return float(np.mean(np.abs(y[7:] - y[:-7])))

    def mase(self, i: int, t: int, pred: np.ndarray, lo: int = 0, hi: int = HORIZON) -> float:
        return float(np.mean(np.abs(self.y[i][t + lo : t + hi] - pred[lo:hi])) / self.scale(i, t))

    def past(self, o: int) -> list[int]:
        """The latest weekly back-test origins whose 28-day windows were complete by origin `o`."""
        return [t for t in range(FIRST, o - HORIZON + 1, STEP)][-PAST:]

    def features(self, i: int, t: int) -> np.ndarray:
        """Leads x features at origin `t`: momentum, the level's distance from last week, lead, weekday."""
        y, wl = self.y[i], self.f[i]["weekly_level", t]
        w = [y[t - 7 * (k + 1) : t - 7 * k].mean() for k in range(4)]
        base = [
            np.log(w[0] / w[1]),
            np.log(w[1] / w[2]),
            np.log(w[0] / w[3]),
            np.log(wl[:7].mean() / w[0]),
            np.log(y[t - 2 : t].mean() / w[0]),
        ]
        leads = np.arange(1, HORIZON + 1)
        weekday = (self.dates[0].dayofweek + t - 1 + leads) % 7
        return np.column_stack([np.tile(base, (HORIZON, 1)), leads, weekday])


def global_models(p: Panel, o: int) -> dict:
    """LightGBM and ridge on log(actual / weekly level), trained on windows complete before `o`."""
    import lightgbm as lgb
    from sklearn.linear_model import Ridge

    past = [t for t in range(FIRST, o - HORIZON + 1, STEP)]
    X = np.vstack([p.features(i, t) for i in range(p.n_series) for t in past])
    Y = np.concatenate(
        [
            np.log(np.maximum(p.y[i][t : t + HORIZON], 1) / p.f[i]["weekly_level", t])
            for i in range(p.n_series)
            for t in past
        ]
    )
    gbm = lgb.LGBMRegressor(
        n_estimators=150,
        learning_rate=0.03,
        num_leaves=7,
        min_child_samples=100,
        subsample=0.8,
        subsample_freq=1,
        verbose=-1,
        random_state=0,
        n_jobs=1,
    ).fit(X, Y)
    ridge = Ridge(alpha=10.0).fit(X[:, :5], Y)
    return {"global gbm": lambda x: gbm.predict(x), "global ridge": lambda x: ridge.predict(x[:, :5])}


def damped(p: Panel, i: int, t: int, b: float, phi: float, weeks: int) -> np.ndarray:
    y = p.y[i]
    slope = np.log(y[t - 7 : t].mean() / y[t - 7 * (weeks + 1) : t - 7 * weeks].mean()) / (7 * weeks)
    return p.f[i]["weekly_level", t] * np.exp(b * slope * np.cumsum(phi ** np.arange(1, HORIZON + 1)))


def pooled_choices(p: Panel, o: int) -> dict:
    """From the panel's last windows before `o`: the damped trend's parameters, band weights, best member per band."""
    past = p.past(o)
    every = [(i, t) for i in range(p.n_series) for t in past]
    trend = min(TREND_GRID, key=lambda g: np.median([p.mase(i, t, damped(p, i, t, *g)) for i, t in every]))
    inv, nnls_w, select = np.zeros((len(MEMBERS), HORIZON)), np.zeros((len(MEMBERS), HORIZON)), []
    from scipy.optimize import nnls

    for lo, hi in BANDS:
        med = np.array([np.median([p.mase(i, t, p.f[i][m, t], lo, hi) for i, t in every]) for m in MEMBERS])
        inv[:, lo:hi] = (1 / med**2)[:, None]
        A = np.vstack([np.column_stack([p.f[i][m, t][lo:hi] / p.scale(i, t) for m in MEMBERS]) for i, t in every])
        b = np.concatenate([p.y[i][t + lo : t + hi] / p.scale(i, t) for i, t in every])
        nnls_w[:, lo:hi] = nnls(A, b)[0][:, None]
        select.append(MEMBERS[int(np.argmin(med))])
    return {"trend": trend, "inv": inv / inv.sum(0), "nnls": nnls_w / nnls_w.sum(0), "select": select}


def candidates(p: Panel, o: int) -> list[dict[str, np.ndarray]]:
    """Every candidate's forecast of every series from origin `o`."""
    models, pooled = global_models(p, o), pooled_choices(p, o)
    out = []
    for i in range(p.n_series):
        y, f = p.y[i], p.f[i]
        stack = np.stack([f[m, o] for m in MEMBERS])
        preds = {"seasonal naive": y[o - 7 : o][np.arange(HORIZON) % 7]}
        preds |= {m.replace("_", " "): f[m, o] for m in MEMBERS}
        x = p.features(i, o)
        preds |= {name: f["weekly_level", o] * np.exp(SHRINK * g(x)) for name, g in models.items()}
        preds["pooled damped trend"] = damped(p, i, o, *pooled["trend"])
        preds["pooled weights"] = (pooled["inv"] * stack).sum(0)
        preds["pooled nnls"] = (pooled["nnls"] * stack).sum(0)
        preds["pooled select"] = np.concatenate(
            [f[m, o][lo:hi] for m, (lo, hi) in zip(pooled["select"], BANDS, strict=True)]
        )
        out.append(preds)
    return out


def evaluate(p: Panel, n: int) -> dict:
    """Median MASE per candidate at days 1-7 and 1-28 over series x origins of the period of `n` days, and its ratio
    to the seasonal naive's."""
    rows = []
    for o in outer_origins(n):
        for i, preds in enumerate(candidates(p, o)):
            rows.append({f"{k}|{w}": p.mase(i, o, v, 0, w) for k, v in preds.items() for w in (7, 28)})
    med = pd.DataFrame(rows).median()
    names = sorted({c.split("|")[0] for c in med.index})
    return {
        k: {
            "mase_1-7": float(med[f"{k}|7"]),
            "mase_1-28": float(med[f"{k}|28"]),
            "ratio_1-7": float(med[f"{k}|7"] / med["seasonal naive|7"]),
            "ratio_1-28": float(med[f"{k}|28"] / med["seasonal naive|28"]),
        }
        for k in names
    }


def main(argv: list[str] | None = None) -> None:
    from features.planner_csv import read_series_csv
    from training.demand import inputs_from_frame

    parser = argparse.ArgumentParser(prog="python -m benchmarks.forecast_global", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    add_trial(parser)
    args = parser.parse_args(argv)
    record = Run("forecast_global", args, parser, neutral=("workers",))
    frame, _ = read_series_csv(DATA)
    inputs = inputs_from_frame(frame)
    n = len(inputs[0].values)
    lengths = {
        name: n if until is None else int((frame.date <= pd.Timestamp(until)).sum() // len(inputs))
        for name, until in PERIODS.items()
    }
    origins = sorted(set(range(FIRST, n - HORIZON + 1, STEP)) | {o for m in lengths.values() for o in outer_origins(m)})
    t0 = time.perf_counter()
    jobs = [(s.values, s.capacity, origins) for s in inputs]
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=get_context("spawn")) as pool:
        forecasts = list(pool.map(member_forecasts, jobs))
    panel = Panel([s.values.to_numpy(float) for s in inputs], inputs[0].values.index, forecasts)
    table = {name: evaluate(panel, m) for name, m in lengths.items()}
    seconds = time.perf_counter() - t0
    print(f"\nGlobal and pooled candidates on {len(inputs)} real series, {HORIZON} days ahead | {seconds:.0f} s")
    for name, rows in table.items():
        print(f"period {name}\n{'candidate':22s} {'ratio 1-7':>10s} {'ratio 1-28':>11s}")
        for k, v in sorted(rows.items(), key=lambda kv: kv[1]["ratio_1-28"]):
            print(f"{k:22s} {v['ratio_1-7']:10.3f} {v['ratio_1-28']:11.3f}")
    best = {name: min(rows[k]["ratio_1-28"] for k in GLOBAL) for name, rows in table.items()}
    both = min(max(table[name][k]["ratio_1-28"] for name in table) for k in GLOBAL)
    targets = [
        Target(
            "best global or pooled candidate, worse of the two periods: median MASE days 1-28 as a share of the naive's",
            both,
            TARGET_RATIO,
            "",
            "<=",
        )
    ]
    figures = [
        Figure(f"{name}: {k}, median MASE days {w} as a share of the naive's", v[f"ratio_{w}"])
        for name, rows in table.items()
        for k, v in sorted(rows.items(), key=lambda kv: kv[1]["ratio_1-28"])
        for w in ("1-7", "1-28")
        if k != "seasonal naive"
    ]
    record.write_results(
        {"seconds": round(seconds, 1), "series": len(inputs), "periods": lengths, "table": table, "best": best},
        targets,
        figures,
    )


if __name__ == "__main__":
    main()
