"""Benchmark: the product's forecasts on real daily bed occupancy that nobody on the project wrote.

Data: `../shared/data/us_inpatient_beds_by_state_2020-08_2021-07.csv` (40 US states, one year each, read by
the product's own planner-CSV reader). For each series, rolling origins over the last 120 days every 14 days
(7 origins), a forecast of 28 days from each, given only the data up to the origin: the product's whole
method (back-test on that history, choice of model, conformal intervals calibrated on that history's
back-test errors; holiday calendar `US`) against every model of the pool and the weekly seasonal naive,
all measured in the same run.

Figures: median MASE (scaled by the in-sample weekly seasonal naive error before the origin) over all
series x origins at days 1-7 and 1-28, its ratio to the seasonal naive's median (target <= 0.85), and the
mean 80% and 95% interval coverage (targets [75%, 85%] and [90%, 98%]). Results with the machine's facts
to `benchmarks/results/forecast_real.json` (with `--until 2021-04-17`: `forecast_real_until_20210417.json`).

Usage::

    .venv/bin/python -m benchmarks.forecast_real [--series 40] [--workers 2] [--arima] [--until 2021-04-17]
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.measure import Figure, Run, Target, add_trial

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "us_inpatient_beds_by_state_2020-08_2021-07.csv"
LOOKBACK, SPACING, HORIZON = 120, 14, 28
TARGET_RATIO, COVER80, COVER95 = 0.85, (0.75, 0.85), (0.90, 0.98)
WINDOWS = {"1-7": 7, "1-28": 28}


def config(arima: bool):
    from training.demand import DEFAULT_MODELS, ForecastConfig

    models = DEFAULT_MODELS[:-1] + (["auto_arima"] if arima else []) + ["ensemble"]
    return ForecastConfig(
        models=models,
        ensemble_members=[m for m in DEFAULT_MODELS if m not in ("seasonal_naive", "ensemble")],
        max_horizon=HORIZON,
        horizons=[1, 7, 28],
        holidays="US",
        workers=1,
    )


def outer_origins(n: int) -> list[int]:
    return [o for o in range(n - LOOKBACK, n - HORIZON + 1, SPACING)]


def one_series(args: tuple) -> list[dict]:
    """Every origin of one series: the product's forecast and every pool model's, scored (BLAS on one thread, as
    the product's job runs it: one process per core)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _one_series(args)


def _one_series(args: tuple) -> list[dict]:
    from models.forecasting import accuracy
    from training.demand import SeriesInput, backtest_series
    from training.demand_backtest import point_forecasts

    site, values, capacity, arima = args
    cfg = config(arima)
    out = []
    for o in outer_origins(len(values)):
        hist, actual = values.iloc[:o], values.to_numpy()[o : o + HORIZON]
        scale = accuracy.seasonal_naive_scale(hist.to_numpy())
        t0 = time.perf_counter()
        res = backtest_series(SeriesInput(site, "beds_occupied", hist, capacity), cfg)
        seconds = time.perf_counter() - t0
        f = res.forecast
        assert f.date.iloc[0] == values.index[o], "forecasts must start the day after the data ends"
        points = {f"pool:{m}": p for m, p in point_forecasts(hist, capacity, HORIZON, cfg).items()}
        points["product"] = f["mean"].to_numpy()
        row = {
            "site": site,
            "origin": str(values.index[o].date()),
            "selected": res.selected,
            "seconds": seconds,
            "backtest_origins": res.coverage["backtest_origins"],
        }
        for w, h in WINDOWS.items():
            for name, p in points.items():
                row[f"mase_{w}:{name}"] = accuracy.mase(actual[:h], p[:h], scale)
            row[f"cover80_{w}"] = accuracy.coverage(actual[:h], f.q10.to_numpy()[:h], f.q90.to_numpy()[:h])
            row[f"cover95_{w}"] = accuracy.coverage(actual[:h], f.q025.to_numpy()[:h], f.q975.to_numpy()[:h])
        out.append(row)
    return out


def summarise(rows: list[dict]) -> dict:
    methods = sorted({k.split(":", 1)[1] for k in rows[0] if k.startswith("mase_")})
    table = {}
    for m in methods:
        table[m] = {w: float(np.median([r[f"mase_{w}:{m}"] for r in rows])) for w in WINDOWS}
    naive = table["pool:seasonal_naive"]
    summary = {
        "median_mase": table,
        "ratio_to_naive": {m: {w: v[w] / naive[w] for w in WINDOWS} for m, v in table.items()},
        "coverage_80": {w: float(np.mean([r[f"cover80_{w}"] for r in rows])) for w in WINDOWS},
        "coverage_95": {w: float(np.mean([r[f"cover95_{w}"] for r in rows])) for w in WINDOWS},
    }
    ratio, c80, c95 = summary["ratio_to_naive"]["product"], summary["coverage_80"], summary["coverage_95"]
    summary["targets"] = {
        **{f"MASE ratio days {w} <= {TARGET_RATIO}": "PASS" if ratio[w] <= TARGET_RATIO else "MISS" for w in WINDOWS},
        **{
            f"80% coverage days {w} in [75%, 85%]": "PASS" if COVER80[0] <= c80[w] <= COVER80[1] else "MISS"
            for w in WINDOWS
        },
        **{
            f"95% coverage days {w} in [90%, 98%]": "PASS" if COVER95[0] <= c95[w] <= COVER95[1] else "MISS"
            for w in WINDOWS
        },
    }
    chosen: dict[str, int] = {}
    for r in rows:
        chosen[r["selected"]] = chosen.get(r["selected"], 0) + 1
    summary["chosen"] = chosen
    return summary


def main(argv: list[str] | None = None) -> None:
    from benchmarks.measure import machine
    from features.planner_csv import read_series_csv
    from training.demand import inputs_from_frame

    parser = argparse.ArgumentParser(prog="python -m benchmarks.forecast_real", description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=40, help="The first N states (alphabetical).")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--arima", action="store_true", help="Add AutoARIMA to the pool (slow).")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument(
        "--until",
        help="Use the data up to this date only (yyyy-mm-dd): the same protocol on an "
        "earlier period, to check that methods chosen on the default one hold elsewhere.",
    )
    add_trial(parser)
    args = parser.parse_args(argv)
    record = Run("forecast_real", args, parser, neutral=("workers", "data", "until"))
    if args.until and not record.trial:  # the earlier period is a record of its own, beside the default one
        record.path = record.path.with_name(f"forecast_real_until_{args.until.replace('-', '')}.json")
    frame, _ = read_series_csv(args.data)
    if args.until:
        frame = frame[frame.date <= pd.Timestamp(args.until)]
    inputs = inputs_from_frame(frame)[: args.series]
    jobs = [(s.site, s.values, s.capacity, args.arima) for s in inputs]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=get_context("spawn")) as pool:
        rows = [r for part in pool.map(one_series, jobs) for r in part]
    seconds = time.perf_counter() - t0
    s = summarise(rows)
    print(
        f"\nForecasts on real bed occupancy: {len(inputs)} series x {len(rows) // len(inputs)} origins, "
        f"{HORIZON} days ahead | {machine()} | {seconds:.0f} s"
    )
    print(f"{'method':26s} {'MASE 1-7':>9s} {'MASE 1-28':>10s} {'ratio 1-7':>10s} {'ratio 1-28':>11s}")
    for m, v in sorted(s["median_mase"].items(), key=lambda kv: kv[1]["1-28"]):
        r = s["ratio_to_naive"][m]
        print(f"{m:26s} {v['1-7']:9.3f} {v['1-28']:10.3f} {r['1-7']:10.3f} {r['1-28']:11.3f}")
    print(
        "product intervals: 80% held "
        + ", ".join(f"{s['coverage_80'][w]:.1%} (days {w})" for w in WINDOWS)
        + "; 95% held "
        + ", ".join(f"{s['coverage_95'][w]:.1%} (days {w})" for w in WINDOWS)
    )
    print(f"models chosen: {s['chosen']}")
    for target, outcome in s["targets"].items():
        print(f"{outcome}: {target}")
    record.write_results(
        {
            "seconds": round(seconds, 1),
            "series": len(inputs),
            "origins_per_series": len(rows) // len(inputs),
            "data": args.data.name,
            "lookback_days": LOOKBACK,
            "spacing_days": SPACING,
            "horizon_days": HORIZON,
            **{k: v for k, v in s.items() if k != "targets"},
            "rows": rows,
        },
        *judged(s),
    )


def judged(s: dict) -> tuple[list[Target], list[Figure]]:
    """The issue's targets (accuracy against the weekly seasonal naive of the same run; interval coverage) and the
    figures behind them."""
    ratio, c80, c95 = s["ratio_to_naive"]["product"], s["coverage_80"], s["coverage_95"]
    targets = []
    for w in WINDOWS:
        targets.append(
            Target(
                f"median MASE, days {w}, as a share of the weekly seasonal naive's", ratio[w], TARGET_RATIO, "", "<="
            )
        )
    targets += coverage_targets(c80, c95)
    figures = [
        Figure(f"median MASE, days {w}: {m.removeprefix('pool:').replace('_', ' ')}", v[w])
        for m, v in sorted(s["median_mase"].items(), key=lambda kv: kv[1]["1-28"])
        for w in WINDOWS
    ]
    return targets, figures


def coverage_targets(c80: dict, c95: dict) -> list[Target]:
    """The issue's interval targets (mean share of days held, per window) as PASS/MISS bounds."""
    return [
        Target(f"{level}% intervals: share of days held, days {w} (at {side})", held[w], bound, "", op)
        for w in WINDOWS
        for level, held, (lo, hi) in ((80, c80, COVER80), (95, c95, COVER95))
        for side, bound, op in (("least", lo, ">="), ("most", hi, "<="))
    ]


if __name__ == "__main__":
    main()
