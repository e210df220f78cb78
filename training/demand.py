"""The demand forecasting job: back-test every forecaster on every series by rolling origin, choose
one per series (the ensemble unless one model is clearly better on enough evidence), fit it on the whole
history and forecast with conformal intervals, the coverage they achieved in the back-test, and the chance
of exceeding capacity. Series run in parallel processes (one per core). A series too short or mostly zeros
is refused with the reason, and the others go on. See `demand_backtest.py` for the method.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator
from threadpoolctl import threadpool_limits

from phm.core.config import Document

from models.forecasting.calendar import DEFAULT_CALENDAR, check_calendar
from models.forecasting.intervals import ResidualModel
from models.forecasting.pool import FORECASTERS
from training.demand_backtest import (
    QCOLS,
    SeriesRefused,
    calibration,
    check_series,
    choose,
    final_forecast,
    lead_bands,
    report_rows,
    run_backtest,
    widening_by_band,
)

Progress = Callable[[str], None]
__all__ = ["QCOLS", "ForecastConfig", "SeriesInput", "SeriesResult", "backtest_series", "fit_series"]
DEFAULT_MODELS = ["seasonal_naive", "harmonic_ar", "auto_ets", "mstl", "weekly_level", "ensemble"]


class ForecastConfig(Document):
    """How series are back-tested, selected and forecast."""

    models: list[str] = Field(
        DEFAULT_MODELS,
        description="Forecasters back-tested on every series (also: auto_theta, auto_arima, prophet - slower).",
    )
    ensemble_members: list[str] = Field(
        [], description="Models the ensemble combines (empty: every model in `models` but the seasonal naive)."
    )
    ensemble_method: Literal["weighted", "median", "mean"] = Field(
        "weighted",
        description="weighted: members weighted by 1/MASE^2 in the series' back-test, those worse than "
        "the seasonal naive left out; median or mean: unweighted.",
    )
    ensemble_anchor: str | None = Field(
        "weekly_level",
        description="weighted: after the first selection horizon (day 7) through the last (day 28), fading over "
        "as many days again, the ensemble is the mean of its members' median and this member's forecast; none: "
        "the back-test weights at every lead.",
    )
    horizons: list[int] = Field([1, 7, 28, 90], description="Back-test report horizons (days ahead, pooled 1..h).")
    max_horizon: int = Field(90, ge=1, le=365, description="Longest forecast a planner can request.")
    origins: int = Field(12, ge=2, le=104, description="Rolling back-test origins at most (fewer on short histories).")
    origin_spacing_days: int = Field(14, ge=1)
    calibration_origins: int = Field(
        8,
        ge=2,
        description="Intervals are calibrated on the errors of this many "
        "latest origins (a rolling window, so a level shift widens them).",
    )
    selection_horizons: list[int] = Field([7, 28], description="Horizons whose back-test MASE chooses the model.")
    selection_margin: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="A single model replaces the ensemble only if its back-test MASE is lower by this share...",
    )
    min_selection_origins: int = Field(4, ge=1, description="...over at least this many non-overlapping windows.")
    threshold_share: float = Field(0.92, gt=0, le=2, description="Occupancy threshold as a share of beds.")
    min_history_days: int = Field(112, ge=56, description="History needed before the first back-test origin.")
    max_zero_share: float = Field(
        0.5, gt=0, le=1, description="Refuse a series with more zero days than this share in its last year."
    )
    holidays: str = Field(
        DEFAULT_CALENDAR,
        description="Holiday calendar: england, none, or a python-holidays country code (e.g. US, GB-SCT).",
    )
    reconcile: bool = Field(
        True,
        description="Make the site forecasts add up to the ICS forecast (MinTrace, "
        "WLS by back-test error variance) when the ICS and its sites are forecast together.",
    )
    coverage_tolerance: float = Field(
        0.1, gt=0, lt=0.5, description="Warn when back-test 80% coverage is off by more than this."
    )
    workers: int = Field(default_factory=lambda: min(2, os.cpu_count() or 1), ge=1)

    @field_validator("models", "ensemble_members", "ensemble_anchor")
    @classmethod
    def _known(cls, value: list[str] | str | None) -> list[str] | str | None:
        if value == "none":  # ensemble_anchor: none, as holidays: none
            return None
        unknown = sorted({value} - set(FORECASTERS) if isinstance(value, str) else set(value or ()) - set(FORECASTERS))
        if unknown:
            raise ValueError(f"unknown forecaster(s) {unknown}; choose from {sorted(FORECASTERS)}")
        return value

    @field_validator("holidays")
    @classmethod
    def _calendar(cls, value: str) -> str:
        return check_calendar(value)

    @model_validator(mode="after")
    def _horizons(self) -> ForecastConfig:
        if any(h < 1 or h > self.max_horizon for h in self.horizons + self.selection_horizons):
            raise ValueError(f"horizons must lie between 1 and max_horizon ({self.max_horizon})")
        if "ensemble" in self.ensemble_members:
            raise ValueError("ensemble_members cannot include the ensemble itself")
        if "ensemble" in self.models and not (
            self.ensemble_members or set(self.models) - {"seasonal_naive", "ensemble"}
        ):
            raise ValueError("the ensemble needs members: add models or ensemble_members")
        return self


@dataclass
class SeriesInput:
    site: str
    metric: str
    values: pd.Series
    capacity: float | None = None


@dataclass
class SeriesResult:
    site: str
    metric: str
    selected: str
    backtest: list[dict]
    forecast: pd.DataFrame
    errors: dict[str, list[list[float]]] = field(default_factory=dict)
    reason: str = ""
    coverage: dict = field(default_factory=dict)  # achieved back-test coverage of the chosen model
    warnings: list[str] = field(default_factory=list)
    residuals: ResidualModel | None = None


def backtest_series(series: SeriesInput, cfg: ForecastConfig) -> SeriesResult:
    """Back-test, choose and forecast one series. BLAS runs on one thread here: the matrices are small, and a
    BLAS thread per core in each of the worker processes (one per core) fight for the cores and more than
    double the CPU time."""
    with threadpool_limits(limits=1, user_api="blas"):
        return _backtest_series(series, cfg)


def _backtest_series(series: SeriesInput, cfg: ForecastConfig) -> SeriesResult:
    label = f"{series.site}/{series.metric}"
    y = series.values.astype(float)
    check_series(label, y.to_numpy(), cfg)
    bt = run_backtest(y, series.capacity, cfg)
    rows, per_origin, widen = report_rows(bt, series.site, series.metric, cfg)
    complete = [o for k, o in enumerate(bt["origins"]) if np.isfinite(bt["actual"][k, max(cfg.selection_horizons) - 1])]
    selected, reason = choose(per_origin, complete, cfg)
    h = min(28, cfg.max_horizon)
    mine = min((r for r in rows if r["model"] == selected), key=lambda r: (abs(r["horizon"] - h), r["horizon"]))
    coverage = {
        "horizon": mine["horizon"],
        "coverage_80": mine["coverage_80"],
        "coverage_95": mine["coverage_95"],
        "origins": mine["coverage_origins"],
        "backtest_origins": len(bt["origins"]),
        "widening": widening_by_band(widen[selected], lead_bands(cfg)),
    }
    warnings = coverage_warnings(label, coverage, cfg)
    residuals = calibration(bt["errors"][selected], cfg.calibration_origins, widen[selected])
    forecast = final_forecast(series, selected, residuals, cfg, bt["blend"])
    forecast["backtest_coverage_80"], forecast["backtest_coverage_95"] = (
        coverage["coverage_80"],
        coverage["coverage_95"],
    )
    forecast["backtest_origins"] = coverage["origins"]
    return SeriesResult(
        series.site,
        series.metric,
        selected,
        rows,
        forecast,
        {m: e.tolist() for m, e in bt["errors"].items()},
        reason,
        coverage,
        warnings,
        residuals,
    )


def coverage_warnings(label: str, cov: dict, cfg: ForecastConfig) -> list[str]:
    """Warnings when the chosen model's intervals missed their promise in the back-test, or rest on little."""
    out = []
    c80, c95, n = cov["coverage_80"], cov["coverage_95"], cov["origins"]
    if not np.isfinite(c80):
        return [f"{label}: interval coverage could not be checked (too few back-test origins)"]
    if abs(c80 - 0.8) > cfg.coverage_tolerance or c95 < 0.95 - cfg.coverage_tolerance / 2:
        out.append(
            f"{label}: back-test intervals off target: 80% held {c80:.0%}, 95% held {c95:.0%} of days "
            f"1-{cov['horizon']} over {n} origin(s); treat the intervals with caution"
        )
    if n < 4:
        why = "short history" if cov["backtest_origins"] < cfg.origins else f"--origins {cfg.origins}"
        out.append(f"{label}: coverage rests on only {n} back-test origin(s) ({why})")
    return out


def _run_one(args: tuple[SeriesInput, ForecastConfig]) -> SeriesResult | str:
    try:
        return backtest_series(*args)
    except SeriesRefused as exc:
        return str(exc)


def fit_series(
    inputs: list[SeriesInput], cfg: ForecastConfig, progress: Progress | None = None, refused: list[str] | None = None
) -> list[SeriesResult]:
    """Back-test, select and forecast every series, in parallel processes when there are several. Refused
    series (too short, mostly zeros) are skipped and their reasons appended to `refused`; if every series is
    refused that is an error."""
    say = progress or (lambda _m: None)
    jobs = [(s, cfg) for s in inputs]
    if cfg.workers <= 1 or len(inputs) == 1:
        outcomes = map(_run_one, jobs)
        results, reasons = _collect(outcomes, say)
    else:
        with ProcessPoolExecutor(max_workers=cfg.workers, mp_context=get_context("spawn")) as pool:
            results, reasons = _collect(pool.map(_run_one, jobs), say)
    if refused is not None:
        refused.extend(reasons)
    if not results:
        raise SeriesRefused("no series could be forecast: " + "; ".join(reasons))
    return results


def _collect(outcomes, say: Progress) -> tuple[list[SeriesResult], list[str]]:
    results, reasons = [], []
    for r in outcomes:
        if isinstance(r, str):
            reasons.append(r)
            say(f"refused {r}")
        else:
            results.append(r)
            say(f"{r.site} {r.metric}: {r.selected}")
    return results, reasons


def inputs_from_frame(
    frame: pd.DataFrame, sites: list[str] | None = None, metrics: list[str] | None = None
) -> list[SeriesInput]:
    """Long table (date, site, metric, value[, capacity]) -> one input per site and metric."""
    out = []
    for (site, metric), part in frame.groupby(["site", "metric"], sort=True):
        if (sites and site not in sites) or (metrics and metric not in metrics):
            continue
        part = part.sort_values("date")
        cap = part["capacity"].dropna().iloc[-1] if "capacity" in part and part["capacity"].notna().any() else None
        out.append(
            SeriesInput(
                str(site),
                str(metric),
                pd.Series(part["value"].to_numpy(float), index=pd.DatetimeIndex(part["date"])),
                float(cap) if cap is not None else None,
            )
        )
    return out


@dataclass
class FitOutput:
    folder: Path
    results: list[SeriesResult]
    backtest: pd.DataFrame
    forecasts: pd.DataFrame
    meta: dict


def save(
    results: list[SeriesResult],
    frame: pd.DataFrame,
    cfg: ForecastConfig,
    folder: Path,
    source: str,
    refused: list[str] | None = None,
) -> FitOutput:
    """Write the forecasts, back-test table, recent history and a description of the fit."""
    folder.mkdir(parents=True, exist_ok=True)
    backtest = pd.DataFrame([r for res in results for r in res.backtest])
    forecasts = pd.concat([r.forecast for r in results], ignore_index=True)
    last = frame["date"].max()
    history = frame[frame["date"] > last - pd.Timedelta(days=730)]
    backtest.to_parquet(folder / "backtest.parquet", index=False)
    forecasts.to_parquet(folder / "forecasts.parquet", index=False)
    history.to_parquet(folder / "history.parquet", index=False)
    meta = {
        "fitted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data_end": str(last.date()),
        "source": source,
        "config": json.loads(cfg.model_dump_json()),
        "selected": {f"{r.site}/{r.metric}": r.selected for r in results},
        "reasons": {f"{r.site}/{r.metric}": r.reason for r in results},
        "coverage": {f"{r.site}/{r.metric}": r.coverage for r in results},
        "warnings": [w for r in results for w in r.warnings],
        "refused": list(refused or []),
        "series": [{"site": r.site, "metric": r.metric} for r in results],
    }
    (folder / "fit.json").write_text(json.dumps(meta, indent=1))
    return FitOutput(folder, results, backtest, forecasts, meta)
