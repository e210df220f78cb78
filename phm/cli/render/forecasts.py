"""What `phm forecast` prints: the back-test, the forecasts' coverage, a forecast, the bed nowcast and a
planning scenario."""

from __future__ import annotations

import math
from datetime import date, timedelta

from rich.text import Text

from phm.cli.common import console
from phm.cli.render.tables import table


def backtest(frame, selected: dict) -> None:
    horizons = sorted(frame.horizon.unique())
    rows = []
    for (s, m, model), part in frame.groupby(["site", "metric", "model"], sort=True):
        by_h = part.set_index("horizon")
        rows.append(
            [
                s,
                m,
                model,
                *[f"{by_h.mase[h]:.2f}" for h in horizons],
                f"{by_h.coverage_80.get(28, float('nan')):.0%}",
                "✓" if selected.get(f"{s}/{m}") == model else "",
            ]
        )
    table(
        "Back-test: MASE by horizon (days 1-h ahead; < 1 beats the seasonal naive in-sample) and 80% interval coverage",
        ["site", "metric", "model", *[f"MASE h{h}" for h in horizons], "cover80 h28", "chosen"],
        rows,
    )


def coverage(meta: dict) -> None:
    """Each forecast's achieved back-test coverage, the origins it rests on, and why its model was chosen."""
    for key, cov in meta.get("coverage", {}).items():
        console.print(
            f"{key}: {meta['selected'][key]} ({meta['reasons'][key]}); back-test intervals held "
            f"{cov['coverage_80']:.0%} (80%) and {cov['coverage_95']:.0%} (95%) of days 1-{cov['horizon']} "
            f"over {cov['origins']} origin(s) of {cov['backtest_origins']} back-tested{_widened(cov)}",
            soft_wrap=True,
            markup=False,
        )
    for note in meta.get("reconciliation", []):
        console.print(note, soft_wrap=True, markup=False)


def _widened(cov: dict) -> str:
    """'; intervals widened ...' where the back-test widened any band of leads (see `training.demand_backtest`)."""
    levels = cov.get("widening", {})
    if not any(f > 1 for bands in levels.values() for f in bands.values()):
        return ""
    return "; intervals widened by the back-test's misses: " + "; ".join(
        f"{level} " + ", ".join(f"days {band} x{f:.2f}" for band, f in bands.items()) for level, bands in levels.items()
    )


def forecast(site: str, metric: str, part, meta: dict) -> None:
    rows = [
        [
            str(r.date.date()),
            f"{r.mean:.1f}",
            f"{r.q10:.1f}-{r.q90:.1f}",
            f"{r.q025:.1f}-{r.q975:.1f}",
            "" if r.p_exceed != r.p_exceed else f"{r.p_exceed:.0%}",
        ]
        for r in part.itertuples()
    ]
    cols = ["date", "mean", "80% interval", "95% interval", "P(over threshold)"]
    ends = (part.date.iloc[0] - timedelta(days=1)).date()  # this series' own data end: each starts the day after
    table(f"{site} {metric}: {part.model.iloc[0]} forecast from data to {ends}", cols, rows, right=set(cols))
    if str(ends) < str(meta["data_end"]):
        console.print(
            f"[yellow]This series' data end on {ends}, {(date.fromisoformat(str(meta['data_end'])) - ends).days} "
            f"day(s) before the latest series' ({meta['data_end']}).[/]"
        )
    if "backtest_coverage_80" in part:
        r = part.iloc[0]
        console.print(
            f"In the back-test these intervals held {r.backtest_coverage_80:.0%} (80%) and "
            f"{r.backtest_coverage_95:.0%} (95%) of days, over {int(r.backtest_origins)} origin(s)."
        )
    if part.capacity.notna().any():
        console.print(
            f"Capacity {part.capacity.iloc[0]:g} beds; threshold {part.threshold.iloc[0]:g} "
            f"({meta['config']['threshold_share']:.0%} of beds)."
        )


def nowcast(frame, night: date, calibration: list) -> None:
    rows = [
        [
            r.site,
            str(r.date.date()),
            f"{r.in_beds_now:,}",
            f"{r.nowcast:.1f}",
            _range(r.q10, r.q90),
            _range(r.q025, r.q975),
        ]
        for r in frame.itertuples()
    ]
    cols = ["site", "night of", "in beds now", "expected in beds", "80% range", "95% range"]
    table(
        f"Bed nowcast (all beds: general and acute and critical care) from the patients in beds on the night of "
        f"{night} (survival by nights elapsed, "
        "age, admission method, diagnosis group) plus expected admissions",
        cols,
        rows,
        right=set(cols[2:]),
    )
    if calibration:
        whose = [
            clause
            for clause, shown in (
                ("a site's from every site's errors", (frame.site != "ICS").any()),
                ("the ICS's from its own", (frame.site == "ICS").any()),
            )
            if shown
        ]
        console.print(
            f"Ranges from the nowcast's own errors on {len(calibration)} past nights ({calibration[0]} to "
            f"{calibration[-1]}), each nowcast made from the data up to that night; {', '.join(whose)}."
        )
    if frame[["q10", "q90"]].isna().any().any() or frame[["q025", "q975"]].isna().any().any():
        console.print(
            "[yellow]Some ranges are not given: too few past nights with data to calibrate them "
            "(an 80% range needs 4, a 95% range 19).[/]"
        )


def _range(low: float, high: float) -> str:
    return "-" if math.isnan(low) or math.isnan(high) else f"{low:.0f} to {high:.0f}"


def scenario(result, site: str, metric: str, horizon: int, top_share: float, prevented: float) -> None:
    console.print(
        f"Reaching {result.people_reached:,} people ({top_share:.1%}) and preventing {prevented:.0%} of their "
        f"admissions: {result.prevented_admissions_per_day:.2f} fewer emergency admissions a day at {site}.",
        markup=False,
    )
    cols = ["measure", "mean", "80% interval", "95% interval"]
    table(
        f"{site} {metric}, next {horizon} days",
        cols,
        [
            [
                name.replace("_", " "),
                f"{v['mean']:.1f}",
                f"{v['q10']:.1f} to {v['q90']:.1f}",
                f"{v['q025']:.1f} to {v['q975']:.1f}",
            ]
            for name, v in result.summary.items()
        ],
        right=set(cols),
    )
    last = result.daily[-1]
    console.print(
        f"On {last['date']}: baseline {last['baseline_mean']:.1f}, with the intervention "
        f"{last['scenario_mean']:.1f} (80%: {last['scenario_q10']:.1f}-{last['scenario_q90']:.1f})."
    )
    for note in result.notes:
        console.print(Text(note, style="dim"))
