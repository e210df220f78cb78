"""Benchmark: the real-series forecast judged over every origin phase, not one grid of origins.

`benchmarks.forecast_real` scores 7 origins 14 days apart; which days those fall on moves its days 1-28 figure by
several hundredths. Here the same
protocol (40 US states, origins every 14 days over the last 120 days, 28 days ahead, data up to each origin only,
the product's whole method through `training.demand.backtest_series`) is run on the data ending 0, 1, ..., 13 days
before the period's end: 14 grids that together hold every origin day once. Two periods: data to 2021-07-31 (the
default; the grids end 0-13 days earlier) and to 2021-04-17 (the grids end 0-13 days later: earlier ones would
leave the first origin too little history), and two rules for the weighted ensemble in the same run: the product's (`product`:
back-test weights at days 1-7, the anchored median from day 8) and `weights alone` (`ensemble_anchor: none`, the
rule before it).

Each worker memoises every model's forecast per (model, history, horizon): a forecaster is a pure function of
its history, so the 14 grids x 2 rules share the fits they have in common (the figures are those of fitting
each one afresh; phase 0 of the default period is `benchmarks.forecast_real`'s run exactly).

Figures per period and rule: the median-MASE ratio to the weekly seasonal naive at days 1-7 and 1-28 (mean,
lowest and highest over the 14 grids, grids passing both <= 0.85), the mean 80% and 95% coverage, and the change
against `weights alone` per grid. Targets (the issue's, judged over all 14 grids on the default period): mean
ratio <= 0.85 at days 1-7 and 1-28; mean coverage 80% in [75%, 85%], 95% in [90%, 98%]. Results with the
machine's facts to `benchmarks/results/forecast_phases.json`.

Usage::

    .venv/bin/python -m benchmarks.forecast_phases [--series 40] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.forecast_real import DATA, HORIZON, SPACING, TARGET_RATIO, WINDOWS, coverage_targets, outer_origins
from benchmarks.measure import Figure, Run, Target, add_trial

PERIODS = {"default": None, "until 2021-04-17": "2021-04-17"}
RULES = {"product": {}, "weights alone": {"ensemble_anchor": None}}
PHASES = SPACING  # grids shifted by 0..13 days hold every origin day once


@contextmanager
def memoised_forecasters() -> Iterator[dict]:
    """While open, every pool forecaster but the ensemble returns a stored forecast for a history and horizon it
    has forecast before (the ensemble's members go through the same table); yields the table, and puts the pool
    back on leaving."""
    from models.forecasting import pool

    table: dict = {}

    def memo(cls: type) -> type:
        class Memo(cls):
            def fit(self, history: pd.Series, capacity: float | None = None):
                self.history = pd.Series(history.to_numpy(dtype=float), index=pd.DatetimeIndex(history.index))
                self.capacity = capacity
                self._key = (cls.name, self.calendar, capacity, history.index[-1], self.history.to_numpy().tobytes())
                return self

            def predict(self, horizon: int) -> np.ndarray:
                key = (self._key, horizon)
                if key not in table:
                    table[key] = cls(self.calendar).fit(self.history, self.capacity).predict(horizon)
                return table[key].copy()

        Memo.__name__ = Memo.__qualname__ = f"Memo{cls.__name__}"
        return Memo

    original = dict(pool.FORECASTERS)
    pool.FORECASTERS.update({name: memo(cls) for name, cls in original.items() if name != "ensemble"})
    try:
        yield table
    finally:
        pool.FORECASTERS.update(original)


def one_series(args: tuple) -> list[dict]:
    """Every period x grid x origin x rule of one series, scored (BLAS on one thread, one process per core)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _one_series(args)


def _one_series(args: tuple) -> list[dict]:
    from benchmarks.forecast_real import config

    site, values, capacity, ends = args
    cfgs = {rule: config(False).model_copy(update=change) for rule, change in RULES.items()}
    with memoised_forecasters():
        return _score(site, values, capacity, ends, cfgs)


def _score(site: str, values: pd.Series, capacity, ends: dict, cfgs: dict) -> list[dict]:
    from models.forecasting import accuracy
    from models.forecasting.pool import FORECASTERS
    from training.demand import SeriesInput, backtest_series

    rows = []
    for period, end in ends.items():
        for phase in range(PHASES):
            n = end - phase if period == "default" else end + phase
            for o in outer_origins(n):
                hist, actual = values.iloc[:o], values.to_numpy()[o : o + HORIZON]
                scale = accuracy.seasonal_naive_scale(hist.to_numpy())
                naive = FORECASTERS["seasonal_naive"]("US").fit(hist, capacity).predict(HORIZON)
                for rule, cfg in cfgs.items():
                    f = backtest_series(SeriesInput(site, "beds_occupied", hist, capacity), cfg).forecast
                    row = {"period": period, "phase": phase, "rule": rule, "site": site, "origin": o}
                    for w, h in WINDOWS.items():
                        row[f"mase_{w}"] = accuracy.mase(actual[:h], f["mean"].to_numpy()[:h], scale)
                        row[f"naive_{w}"] = accuracy.mase(actual[:h], naive[:h], scale)
                        row[f"cover80_{w}"] = accuracy.coverage(actual[:h], f.q10.to_numpy()[:h], f.q90.to_numpy()[:h])
                        row[f"cover95_{w}"] = accuracy.coverage(
                            actual[:h], f.q025.to_numpy()[:h], f.q975.to_numpy()[:h]
                        )
                    rows.append(row)
    return rows


def summarise(rows: pd.DataFrame) -> dict:
    """Per period and rule: each grid's ratios and coverage, and their mean, range and change against the
    weights alone."""
    out: dict = {}
    for (period, rule), d in rows.groupby(["period", "rule"], sort=False):
        grids = d.groupby("phase").agg(
            **{f"m{w}": (f"mase_{w}", "median") for w in WINDOWS},
            **{f"n{w}": (f"naive_{w}", "median") for w in WINDOWS},
            **{f"c80_{w}": (f"cover80_{w}", "mean") for w in WINDOWS},
            **{f"c95_{w}": (f"cover95_{w}", "mean") for w in WINDOWS},
        )
        ratio = {w: grids[f"m{w}"] / grids[f"n{w}"] for w in WINDOWS}
        out.setdefault(period, {})[rule] = {
            "ratio_per_grid": {w: [round(float(v), 4) for v in r] for w, r in ratio.items()},
            "ratio_mean": {w: float(r.mean()) for w, r in ratio.items()},
            "ratio_range": {w: [float(r.min()), float(r.max())] for w, r in ratio.items()},
            "grids_passing": int(((ratio["1-7"] <= TARGET_RATIO) & (ratio["1-28"] <= TARGET_RATIO)).sum()),
            "coverage_80": {w: float(grids[f"c80_{w}"].mean()) for w in WINDOWS},
            "coverage_95": {w: float(grids[f"c95_{w}"].mean()) for w in WINDOWS},
        }
    for rules in out.values():
        base = np.array(rules["weights alone"]["ratio_per_grid"]["1-28"])
        for r in rules.values():
            delta = np.array(r["ratio_per_grid"]["1-28"]) - base
            r["change_1-28_vs_weights_alone"] = {"mean": float(delta.mean()), "grids_better": int((delta < 0).sum())}
    return out


def judged(s: dict) -> tuple[list[Target], list[Figure]]:
    """The issue's targets over all grids of the default period (the product's rule); the rest as figures."""
    p = s["default"]["product"]
    targets = [
        Target(
            f"median MASE, days {w}, share of the naive's, mean over {PHASES} grids",
            p["ratio_mean"][w],
            TARGET_RATIO,
            "",
            "<=",
        )
        for w in WINDOWS
    ]
    targets += coverage_targets(p["coverage_80"], p["coverage_95"])
    figures = []
    for period, rules in s.items():
        for rule, r in rules.items():
            at = f"{period}, {rule}"
            figures += [
                Figure(f"{at}: ratio days {w}, mean over grids (lowest {lo:.3f}, highest {hi:.3f})", r["ratio_mean"][w])
                for w, (lo, hi) in r["ratio_range"].items()
            ]
            figures += [
                Figure(f"{at}: grids passing both ratios <= {TARGET_RATIO}", r["grids_passing"], "of 14"),
                Figure(f"{at}: 80% coverage, days 1-28", r["coverage_80"]["1-28"]),
                Figure(f"{at}: 95% coverage, days 1-28", r["coverage_95"]["1-28"]),
            ]
            if rule != "weights alone":
                c = r["change_1-28_vs_weights_alone"]
                figures.append(
                    Figure(
                        f"{at}: change in ratio days 1-28 against the weights alone (better on {c['grids_better']} of 14)",
                        c["mean"],
                    )
                )
    return targets, figures


def main(argv: list[str] | None = None) -> None:
    from benchmarks.measure import machine
    from features.planner_csv import read_series_csv
    from training.demand import inputs_from_frame

    parser = argparse.ArgumentParser(prog="python -m benchmarks.forecast_phases", description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=40, help="The first N states (alphabetical).")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--data", type=Path, default=DATA)
    add_trial(parser)
    args = parser.parse_args(argv)
    record = Run("forecast_phases", args, parser, neutral=("workers", "data"))
    frame, _ = read_series_csv(args.data)
    inputs = inputs_from_frame(frame)[: args.series]
    dates = inputs[0].values.index
    ends = {p: len(dates) if u is None else int((dates <= pd.Timestamp(u)).sum()) for p, u in PERIODS.items()}
    jobs = [(s.site, s.values, s.capacity, ends) for s in inputs]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=get_context("spawn")) as pool:
        rows = pd.DataFrame([r for part in pool.map(one_series, jobs) for r in part])
    seconds = time.perf_counter() - t0
    s = summarise(rows)
    print(f"\nReal bed occupancy over {PHASES} origin grids: {len(inputs)} series | {machine()} | {seconds:.0f} s")
    for period, rules in s.items():
        for rule, r in rules.items():
            print(
                f"{period:18s} {rule:14s} ratio 1-7 {r['ratio_mean']['1-7']:.3f} 1-28 {r['ratio_mean']['1-28']:.3f} "
                f"[{r['ratio_range']['1-28'][0]:.3f}, {r['ratio_range']['1-28'][1]:.3f}] "
                f"grids passing {r['grids_passing']}/{PHASES} | 80% {r['coverage_80']['1-7']:.1%}/"
                f"{r['coverage_80']['1-28']:.1%} 95% {r['coverage_95']['1-7']:.1%}/{r['coverage_95']['1-28']:.1%}"
            )
    record.write_results(
        {"seconds": round(seconds, 1), "series": len(inputs), "period_ends": ends, "summary": s},
        *judged(s),
    )


if __name__ == "__main__":
    main()
