"""The demand forecasting job: back-test every forecaster on every series by rolling origin, choose
one per series, fit it on the whole history and forecast with calibrated intervals and the chance of
exceeding capacity. Series run in parallel processes (one per core).

Back-test: origins every `origin_spacing_days` ending `max_horizon` days before the last observed day;
at each origin every model is fitted on the history before it and forecasts `max_horizon` days.
"Horizon h" figures pool lead times 1..h over all origins. Interval coverage and pinball loss are
computed leave-one-origin-out: the intervals for one origin are calibrated on the others' residuals.
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

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from phm.core.config import Document

from models.forecasting import accuracy
from models.forecasting.forecasters import FORECASTERS, Ensemble
from models.forecasting.intervals import QUANTILES, ResidualModel, fit_residuals

Progress = Callable[[str], None]
QCOLS = {0.025: "q025", 0.1: "q10", 0.5: "q50", 0.9: "q90", 0.975: "q975"}


class ForecastConfig(Document):
    """How series are back-tested, selected and forecast."""

    models: list[str] = Field(["seasonal_naive", "harmonic_ar", "prophet", "ensemble"])
    horizons: list[int] = Field([1, 7, 28, 90], description="Back-test report horizons (days ahead, pooled 1..h).")
    max_horizon: int = Field(90, ge=1, le=365, description="Longest forecast a planner can request.")
    origins: int = Field(6, ge=2, le=52, description="Rolling back-test origins.")
    origin_spacing_days: int = Field(28, ge=1)
    selection_horizons: list[int] = Field([7, 28], description="Horizons whose mean MASE chooses the model.")
    threshold_share: float = Field(0.92, gt=0, le=2, description="Occupancy threshold as a share of beds.")
    min_history_days: int = Field(365, ge=56, description="History needed before the first back-test origin.")
    workers: int = Field(default_factory=lambda: min(2, os.cpu_count() or 1), ge=1)

    @field_validator("models")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(FORECASTERS))
        if unknown:
            raise ValueError(f"unknown forecaster(s) {unknown}; choose from {sorted(FORECASTERS)}")
        return value

    @model_validator(mode="after")
    def _horizons(self) -> ForecastConfig:
        if any(h < 1 or h > self.max_horizon for h in self.horizons + self.selection_horizons):
            raise ValueError(f"horizons must lie between 1 and max_horizon ({self.max_horizon})")
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


def origins_for(n: int, cfg: ForecastConfig) -> list[int]:
    last = n - cfg.max_horizon
    return [o for o in (last - k * cfg.origin_spacing_days for k in reversed(range(cfg.origins)))
            if o >= cfg.min_history_days]


def _point_forecasts(history: pd.Series, capacity: float | None, horizon: int, models: list[str]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name in models:
        if name == "ensemble":
            continue
        out[name] = FORECASTERS[name]().fit(history, capacity).predict(horizon)
    if "ensemble" in models:
        for member in ("harmonic_ar", "prophet"):
            if member not in out:
                out[member] = FORECASTERS[member]().fit(history, capacity).predict(horizon)
        out["ensemble"] = (out["harmonic_ar"] + out["prophet"]) / 2
    return {k: v for k, v in out.items() if k in models}


def backtest_series(series: SeriesInput, cfg: ForecastConfig) -> SeriesResult:
    y = series.values.astype(float)
    H = cfg.max_horizon
    origins = origins_for(len(y), cfg)
    if len(origins) < 2:
        raise ValueError(f"{series.site}/{series.metric}: {len(y)} days of history; back-testing {cfg.origins} origins "
                         f"of {H} days needs at least {cfg.min_history_days + H + cfg.origin_spacing_days} days")
    preds = {m: np.full((len(origins), H), np.nan) for m in cfg.models}
    actual = np.full((len(origins), H), np.nan)
    scales = np.zeros(len(origins))
    for k, o in enumerate(origins):
        history = y.iloc[:o]
        for name, point in _point_forecasts(history, series.capacity, H, cfg.models).items():
            preds[name][k] = point
        actual[k] = y.to_numpy()[o:o + H]
        scales[k] = accuracy.seasonal_naive_scale(history.to_numpy())
    errors = {m: actual - p for m, p in preds.items()}
    rows = []
    for name in cfg.models:
        loo = []
        for k in range(len(origins)):
            rm = fit_residuals(np.delete(errors[name], k, axis=0))
            loo.append(rm.quantiles(preds[name][k]))
        for h in cfg.horizons:
            a, p = actual[:, :h], preds[name][:, :h]
            q = {qq: np.vstack([loo[k][qq][:h] for k in range(len(origins))]) for qq in QUANTILES}
            rows.append({
                "site": series.site, "metric": series.metric, "model": name, "horizon": h,
                "mase": float(np.mean([accuracy.mase(a[k], p[k], scales[k]) for k in range(len(origins))])),
                "mape": accuracy.mape(a.ravel(), p.ravel()), "mae": float(np.mean(np.abs(a - p))),
                "coverage_80": accuracy.coverage(a, q[0.1], q[0.9]),
                "coverage_95": accuracy.coverage(a, q[0.025], q[0.975]),
                "pinball": accuracy.pinball(a.ravel(), {qq: v.ravel() for qq, v in q.items()}),
                "origins": len(origins)})
    table = pd.DataFrame(rows)
    chosen = table[table.horizon.isin(cfg.selection_horizons)].groupby("model")
    score = chosen.mase.mean()
    if score.isna().all():  # a flat history (e.g. no critical care recorded) has no MASE scale: use MAE
        score = chosen.mae.mean()
    selected = str(score.idxmin())
    forecast = final_forecast(series, selected, fit_residuals(errors[selected]), cfg)
    return SeriesResult(series.site, series.metric, selected, rows, forecast,
                        {m: e.tolist() for m, e in errors.items()})


def final_forecast(series: SeriesInput, model: str, residuals: ResidualModel, cfg: ForecastConfig) -> pd.DataFrame:
    y = series.values.astype(float)
    fitted = (Ensemble() if model == "ensemble" else FORECASTERS[model]()).fit(y, series.capacity)
    point = fitted.predict(cfg.max_horizon)
    qs = residuals.quantiles(point)
    out = pd.DataFrame({"site": series.site, "metric": series.metric, "date": fitted.future_index(cfg.max_horizon),
                        "model": model, "mean": point, **{QCOLS[q]: v for q, v in qs.items()}})
    out["capacity"] = series.capacity if series.capacity else np.nan
    if series.capacity:
        threshold = cfg.threshold_share * series.capacity
        out["threshold"] = threshold
        out["p_exceed"] = residuals.exceed_probability(point, threshold)
    else:
        out["threshold"], out["p_exceed"] = np.nan, np.nan
    out["sigma_a"], out["sigma_b"] = residuals.a, residuals.b
    return out


def _run_one(args: tuple[SeriesInput, ForecastConfig]) -> SeriesResult:
    return backtest_series(*args)


def fit_series(inputs: list[SeriesInput], cfg: ForecastConfig, progress: Progress | None = None) -> list[SeriesResult]:
    """Back-test, select and forecast every series, in parallel processes when there are several."""
    say = progress or (lambda _m: None)
    if cfg.workers <= 1 or len(inputs) == 1:
        results = []
        for s in inputs:
            results.append(backtest_series(s, cfg))
            say(f"{s.site} {s.metric}: {results[-1].selected}")
        return results
    with ProcessPoolExecutor(max_workers=cfg.workers, mp_context=get_context("spawn")) as pool:
        results = []
        for r in pool.map(_run_one, [(s, cfg) for s in inputs]):
            results.append(r)
            say(f"{r.site} {r.metric}: {r.selected}")
    return results


def inputs_from_frame(frame: pd.DataFrame, sites: list[str] | None = None, metrics: list[str] | None = None
                      ) -> list[SeriesInput]:
    """Long table (date, site, metric, value[, capacity]) -> one input per site and metric."""
    out = []
    for (site, metric), part in frame.groupby(["site", "metric"], sort=True):
        if (sites and site not in sites) or (metrics and metric not in metrics):
            continue
        part = part.sort_values("date")
        cap = part["capacity"].dropna().iloc[-1] if "capacity" in part and part["capacity"].notna().any() else None
        out.append(SeriesInput(str(site), str(metric), pd.Series(part["value"].to_numpy(float),
                                                                index=pd.DatetimeIndex(part["date"])),
                               float(cap) if cap is not None else None))
    return out


@dataclass
class FitOutput:
    folder: Path
    results: list[SeriesResult]
    backtest: pd.DataFrame
    forecasts: pd.DataFrame
    meta: dict


def save(results: list[SeriesResult], frame: pd.DataFrame, cfg: ForecastConfig, folder: Path, source: str) -> FitOutput:
    """Write the forecasts, back-test table, recent history and a description of the fit."""
    folder.mkdir(parents=True, exist_ok=True)
    backtest = pd.DataFrame([r for res in results for r in res.backtest])
    forecasts = pd.concat([r.forecast for r in results], ignore_index=True)
    last = frame["date"].max()
    history = frame[frame["date"] > last - pd.Timedelta(days=730)]
    backtest.to_parquet(folder / "backtest.parquet", index=False)
    forecasts.to_parquet(folder / "forecasts.parquet", index=False)
    history.to_parquet(folder / "history.parquet", index=False)
    meta = {"fitted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "data_end": str(last.date()),
            "source": source, "config": json.loads(cfg.model_dump_json()),
            "selected": {f"{r.site}/{r.metric}": r.selected for r in results},
            "series": [{"site": r.site, "metric": r.metric} for r in results]}
    (folder / "fit.json").write_text(json.dumps(meta, indent=1))
    return FitOutput(folder, results, backtest, forecasts, meta)
