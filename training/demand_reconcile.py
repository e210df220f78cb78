"""Make the forecasts of the sites add up to the forecast of the whole system (site `ICS`) for each metric: the
means are reconciled by MinTrace (`models/forecasting/reconcile.py`) and add up exactly; each series' intervals
move with its mean (so each stays centred where it was on its own mean; the sites' quantiles do not add up to the
ICS's - a quantile of a sum is not the sum of the quantiles - and should not), and the chance of exceeding capacity
is recomputed from the moved mean. Only series covering the same days are reconciled."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.forecasting.reconcile import mintrace_wls
from training.demand_backtest import QCOLS

TOTAL = "ICS"
TOLERANCE = 1e-6  # the ICS history must be the sum of its sites' (relative), or there is no hierarchy


def reconcile_results(results: list, histories: dict[tuple[str, str], pd.Series]) -> list[str]:
    """Reconcile in place every metric forecast for the ICS and two or more sites; notes on what was done."""
    notes = []
    for metric in sorted({r.metric for r in results}):
        total = next((r for r in results if r.metric == metric and r.site == TOTAL), None)
        sites = [r for r in results if r.metric == metric and r.site != TOTAL]
        if total is None or len(sites) < 2:
            continue
        if any(
            not r.forecast["date"].reset_index(drop=True).equals(total.forecast["date"].reset_index(drop=True))
            for r in sites
        ):
            ends = sorted({str(histories[(r.site, metric)].index[-1].date()) for r in [total, *sites]})
            notes.append(
                f"{metric}: not reconciled (the ICS and site series end on different days: {', '.join(ends)}; "
                "forecasts of different days cannot be made to add up)"
            )
            continue
        summed = sum(histories[(r.site, metric)] for r in sites)
        ics = histories[(TOTAL, metric)]
        gap = float(np.max(np.abs(summed.reindex(ics.index) - ics)) / max(float(ics.abs().max()), 1.0))
        if not np.isfinite(gap) or gap > TOLERANCE:
            notes.append(f"{metric}: not reconciled (the ICS series is not the sum of the {len(sites)} sites forecast)")
            continue
        h = len(total.forecast)

        def var(r, h: int = h) -> np.ndarray:  # error variance at each lead
            return r.residuals.sigma(h) ** 2

        new_total, new_sites = mintrace_wls(
            total.forecast["mean"].to_numpy(),
            np.vstack([r.forecast["mean"] for r in sites]),
            var(total),
            np.vstack([var(r) for r in sites]),
        )
        for r, mean in zip([total, *sites], [new_total, *new_sites]):
            _move(r, mean)
        notes.append(f"{metric}: {len(sites)} site forecasts reconciled to add up to the ICS forecast (MinTrace WLS)")
    return notes


def _move(result, mean: np.ndarray) -> None:
    f = result.forecast
    shift = mean - f["mean"].to_numpy()
    for col in QCOLS.values():
        f[col] = np.clip(f[col].to_numpy() + shift, 0, None)
    f["mean"] = mean
    if f["threshold"].notna().any():
        f["p_exceed"] = result.residuals.exceed_probability(mean, float(f["threshold"].iloc[0]))
    f["reconciled"] = True
