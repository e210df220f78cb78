"""Benchmark: the bed nowcast against the midnight census and the time-series forecast at days 1-3.

On the synthetic ICS of 1,000,000 people (7 acute sites of ~350 G&A patients at midnight, the size of a real
ICS's hospitals; `--warehouse` names another warehouse, `--persons` another size), origins every 3 days over
the last 120 days of data: at each origin, every site's nowcast of the next 3 nights from the spells in beds
that night (hazards estimated from the year before the origin only; expected admissions of each kind from
the weeks before it) beside the product's time-series forecast (the median ensemble of the default pool's
members - harmonic-AR, AutoETS, MSTL, weekly profile + smoothed level - fitted on the census up to the origin)
and tonight's census carried forward. Also the noise floor: the error the nowcast would still make were its
model exact (each patient's stay a coin with its own chance, admissions Poisson; mean absolute error of a
normal with that spread), the least any method can reach from the same information; and the admissions floor:
the part of that spread from tomorrow's admissions alone, what would remain even were every current patient's
discharge day known exactly (no forecast of the census can know who will be admitted tomorrow). Target: the
nowcast's day-1 MAE at most 0.7 of the time-series forecast's.

The nowcast's 80% and 95% ranges, as `phm forecast nowcast` gives them at each origin: calibrated on the
nowcast's errors at the 40 past nights before it (every 3 days; each nowcast made from the data up to its own
night, each error known by the origin), computed once for every night needed and selected per origin exactly as
the product selects them (`training.nowcast.range_scales`). Targets: the share of nights 1-3 the ranges held,
sites and the ICS together, 75-85% (80%) and 90-98% (95%). Results with the machine's facts to
`benchmarks/results/nowcast.json`.

Usage::

    .venv/bin/python -m benchmarks.nowcast [--warehouse PATH] [--persons 20000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.measure import Figure, Run, Target, add_trial

TARGET = 0.7
HELD = {0.8: (0.75, 0.85), 0.95: (0.90, 0.98)}


def ensemble_forecast(history, horizon: int) -> np.ndarray:
    from models.forecasting.pool import Ensemble

    return Ensemble().fit(history).predict(horizon)


def main(argv: list[str] | None = None) -> None:
    from benchmarks.measure import cached_warehouse, machine
    from features.series import nowcast_spells
    from benchmarks.nowcast_oracle import oracle_mae
    from training.nowcast import NowcastConfig, backtest

    parser = argparse.ArgumentParser(prog="python -m benchmarks.nowcast", description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path)
    parser.add_argument("--persons", type=int, default=1_000_000)
    add_trial(parser)
    args = parser.parse_args(argv)
    record = Run("nowcast", args, parser, neutral=("warehouse",))
    warehouse = cached_warehouse(args.persons, args.warehouse)
    spells = nowcast_spells(warehouse)
    t0 = time.perf_counter()
    cfg = NowcastConfig()
    table = backtest(spells, cfg, ensemble_forecast)
    seconds = time.perf_counter() - t0
    held = ranges_held(spells, table, cfg)
    mae = {}
    for name in ("nowcast", "time_series", "persistence"):
        err = (table[name] - table.census).abs()
        mae[name] = {f"day_{k}": float(err[table.ahead == k].mean()) for k in (1, 2, 3)}
        mae[name]["by_site_day_1"] = {
            s: float(e) for s, e in err[table.ahead == 1].groupby(table.site[table.ahead == 1]).mean().items()
        }
    for name, sd in (("noise_floor", table.nowcast_sd), ("admissions_floor", table.arrivals_sd)):
        mae[name] = {f"day_{k}": float(np.sqrt(2 / np.pi) * sd[table.ahead == k].mean()) for k in (1, 2, 3)}
    generator_floor = oracle_mae(warehouse, table)
    floor = mae["noise_floor"]
    ratio = mae["nowcast"]["day_1"] / mae["time_series"]["day_1"]
    outcome = "PASS" if ratio <= TARGET else "MISS"
    census = float(table.census.mean())
    print(
        f"\nBed nowcast back-test: {table.site.nunique()} sites x {table.origin.nunique()} origins | {machine()} | {seconds:.0f} s"
    )
    print(f"mean census {census:.1f} beds; MAE by nights ahead:")
    for name, v in mae.items():
        print(f"  {name:12s} " + "  ".join(f"day {k}: {v[f'day_{k}']:.2f}" for k in (1, 2, 3)))
    for unit, by_level in held.items():
        print(
            f"  ranges held ({unit}): "
            + "; ".join(
                f"{level:.0%}: " + ", ".join(f"night {k} {v:.1%}" for k, v in by_night.items())
                for level, by_night in by_level.items()
            )
        )
    print(
        f"{outcome}: nowcast day-1 MAE / time-series day-1 MAE = {ratio:.3f} (target <= {TARGET}); the noise floor is "
        f"{floor['day_1'] / mae['time_series']['day_1']:.3f} of the time series' day-1 MAE, the admissions alone "
        f"{mae['admissions_floor']['day_1'] / mae['time_series']['day_1']:.3f}; a forecast knowing the generator's own "
        f"chances {generator_floor / mae['time_series']['day_1']:.3f}"
    )
    record.write_results(
        {
            "sites": int(table.site.nunique()),
            "origins": int(table.origin.nunique()),
            "seconds": round(seconds, 1),
            "mean_census": round(census, 1),
            "mae": mae,
            "generator_floor_day_1": round(generator_floor, 3),
            "ranges_held": {u: {f"{lv:.0%}": v for lv, v in by.items()} for u, by in held.items()},
        },
        *judged(mae, census, held, generator_floor),
    )


def ranges_held(spells, table, cfg) -> dict[str, dict[float, dict[str, float]]]:
    """Share of nights the nowcast's ranges held at each back-test origin, by unit (sites, the ICS, all) and level,
    per night ahead and over nights 1-3 ("1-3"), each origin's ranges set as the product sets them: from the
    errors at its 40 calibration nights, computed here once for every night any origin needs."""
    import pandas as pd

    from training.nowcast import LEVELS, by_site, calibration_origins, errors, range_scales, with_ics, with_ranges

    origins = sorted(table.origin.unique())
    wanted = sorted({o for t in origins for o in calibration_origins(int(t), cfg)} - set(origins))
    cols = ["site", "origin", "ahead", "census", "nowcast", "nowcast_sd", "arrivals_sd"]
    errs = pd.concat([table[cols], errors(spells, by_site(spells), wanted, cfg)], ignore_index=True)
    errs = with_ics(errs, ["origin", "ahead"])
    parts = []
    for t in origins:
        ranged = with_ranges(errs[errs.origin == t], range_scales(errs, int(t), cfg))
        for level, (lo, hi) in LEVELS.items():
            ranged[level] = (ranged.census >= ranged[lo]) & (ranged.census <= ranged[hi])
        parts.append(ranged)
    done = pd.concat(parts, ignore_index=True)
    units = {"sites": done[done.site != "ICS"], "ICS": done[done.site == "ICS"], "all": done}
    return {
        unit: {
            level: {
                **{str(k): float(rows[level][rows.ahead == k].mean()) for k in sorted(rows.ahead.unique())},
                "1-3": float(rows[level].mean()),
            }
            for level in LEVELS
        }
        for unit, rows in units.items()
    }


def judged(mae: dict, census: float, held: dict, generator_floor: float) -> tuple[list[Target], list[Figure]]:
    """The issue's target (nowcast day-1 MAE at most 0.7 of the time series'), the ranges' coverage targets and the
    figures beside them."""
    return (
        [
            Target(
                "nowcast day-1 MAE as a share of the time-series forecast's",
                mae["nowcast"]["day_1"] / mae["time_series"]["day_1"],
                TARGET,
                "",
                "<=",
            ),
            *(
                Target(
                    f"nowcast {level:.0%} ranges: share of nights 1-3 held, sites and ICS ({side})",
                    held["all"][level]["1-3"],
                    bound,
                    "",
                    op,
                )
                for level, (low, high) in HELD.items()
                for side, bound, op in (("at least", low, ">="), ("at most", high, "<="))
            ),
        ],
        [
            *(
                Figure(
                    f"nowcast {level:.0%} ranges held, {unit}, night{'s' if k == '1-3' else ''} {k}",
                    held[unit][level][k],
                )
                for unit in ("sites", "ICS")
                for level in HELD
                for k in held[unit][level]
            ),
            *(
                Figure(f"day-{k} MAE: {name.replace('_', ' ')}", mae[name][f"day_{k}"], "beds")
                for name in ("nowcast", "time_series", "persistence", "noise_floor", "admissions_floor")
                for k in (1, 2, 3)
            ),
            Figure(
                "day-1 noise floor as a share of the time-series forecast's MAE",
                mae["noise_floor"]["day_1"] / mae["time_series"]["day_1"],
            ),
            Figure(
                "day-1 admissions floor (every current discharge known) as a share of the time series' MAE",
                mae["admissions_floor"]["day_1"] / mae["time_series"]["day_1"],
            ),
            Figure("day-1 MAE: a forecast knowing the generator's own chances (its floor)", generator_floor, "beds"),
            Figure(
                "day-1 generator's floor (no method on this ICS can do better) as a share of the time series' MAE",
                generator_floor / mae["time_series"]["day_1"],
            ),
            Figure("mean midnight census per site", census, "beds"),
        ],
    )


if __name__ == "__main__":
    main()
