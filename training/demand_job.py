"""`phm forecast fit`: build the daily series (from the warehouse, or a planner's CSV), back-test,
select and forecast every series, save the result for `phm forecast predict`, and log everything to
MLflow (back-test table, selections, forecasts, a chart per series)."""

from __future__ import annotations

import hashlib
import json
import shutil
import re
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import pandas as pd  # noqa: E402

from features.planner_csv import read_series_csv  # noqa: E402
from features.series import METRICS, daily_series  # noqa: E402
from phm.core.settings import Settings  # noqa: E402
from training import tracking  # noqa: E402
from training.demand_reconcile import reconcile_results  # noqa: E402
from training.demand import FitOutput, ForecastConfig, Progress, fit_series, inputs_from_frame, save  # noqa: E402

EXPERIMENT = "phm-demand"


def forecasts_dir(settings: Settings) -> Path:
    return settings.home / "forecasts" / "latest"


def load_frame(
    settings: Settings, csv: Path | None, dayfirst: bool = False, columns: dict[str, str] | None = None
) -> tuple[pd.DataFrame, list[str], str]:
    if csv is not None:
        frame, warnings = read_series_csv(csv, dayfirst=dayfirst, columns=columns)
        return frame, warnings, f"CSV {csv}"
    return daily_series(settings.warehouse_path), [], f"warehouse {settings.warehouse_path}"


def chart(history: pd.DataFrame, forecast: pd.DataFrame, title: str):
    """History (last year), forecast with 80% and 95% intervals, and the capacity line."""
    fig, ax = plt.subplots(figsize=(9, 3.4))
    recent = history[history.date > history.date.max() - pd.Timedelta(days=365)]
    ax.plot(recent.date, recent.value, color="#425563", lw=0.8, label="history")
    ax.fill_between(forecast.date, forecast.q025, forecast.q975, color="#005EB8", alpha=0.15, label="95% interval")
    ax.fill_between(forecast.date, forecast.q10, forecast.q90, color="#005EB8", alpha=0.3, label="80% interval")
    ax.plot(forecast.date, forecast["mean"], color="#005EB8", lw=1.5, label=f"forecast ({forecast.model.iloc[0]})")
    cap = forecast.capacity.iloc[0]
    if pd.notna(cap):
        ax.axhline(cap, color="#D5281B", lw=1, ls="--", label=f"beds ({cap:g})")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left", ncol=3)
    fig.tight_layout()
    return fig


def run_fit(
    settings: Settings,
    cfg: ForecastConfig,
    csv: Path | None = None,
    sites: list[str] | None = None,
    metrics: list[str] | None = None,
    progress: Progress | None = None,
    dayfirst: bool = False,
    columns: dict[str, str] | None = None,
) -> tuple[FitOutput, list[str], str]:
    say = progress or (lambda _m: None)
    frame, warnings, source = load_frame(settings, csv, dayfirst, columns)
    inputs = inputs_from_frame(frame, sites, metrics)
    if not inputs:
        known = sorted(frame.site.unique())
        raise ValueError(
            f"no series match sites {sites} and metrics {metrics}; sites: {known}, "
            f"metrics: {sorted(frame.metric.unique())}"
        )
    say(f"back-testing {len(inputs)} series x {len(cfg.models)} models on {cfg.workers} process(es)")
    refused: list[str] = []
    results = fit_series(inputs, cfg, progress=say, refused=refused)
    warnings = warnings + [f"refused {r}" for r in refused] + [w for r in results for w in r.warnings]
    notes = reconcile_results(results, {(s.site, s.metric): s.values for s in inputs}) if cfg.reconcile else []
    target = forecasts_dir(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".fit-", dir=target.parent))
    try:
        output = save(results, frame, cfg, staging, source, refused)
        output.meta["reconciliation"] = notes
        if source.startswith("warehouse"):  # scenario inputs belong to the warehouse's people, not to a planner's file
            scenario_files = [
                p for p in target.glob("*") if p.name.startswith(("risk_scores", "emergency_stays", "scenario_"))
            ]
            for p in scenario_files:  # keep scenario inputs until they are prepared again
                shutil.copy2(p, staging / p.name)
        say("logging to MLflow")
        run_id = _log(settings, output, frame, cfg)
        output.meta["run_id"] = run_id
        (staging / "fit.json").write_text(json.dumps(output.meta, indent=1))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # nothing half-made is left beside the published forecasts
        raise
    old = target.with_name(".previous")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    staging.rename(target)  # the new forecasts appear whole
    shutil.rmtree(old, ignore_errors=True)
    output.folder = target
    return output, warnings, run_id


def mlflow_name(name: str) -> str:
    """A series' site or metric as MLflow takes it in metric keys and artifact file names (letters, digits, `_-.`
    only, at most 60 characters): a name that needs changing ("St Mary's", "A&E (Acute)") keeps what it can and
    gains a short digest of the original, so two names never meet."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:50].strip(".") or "_"
    if safe == name:
        return name
    return f"{safe}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def _log(settings: Settings, output: FitOutput, frame: pd.DataFrame, cfg: ForecastConfig) -> str:
    tracking.configure(settings)
    exp = tracking.experiment_id(settings, EXPERIMENT)
    with mlflow.start_run(experiment_id=exp, run_name="demand-forecasts") as run:
        mlflow.log_params(
            {
                "models": ",".join(cfg.models),
                "origins": cfg.origins,
                "max_horizon": cfg.max_horizon,
                "origin_spacing_days": cfg.origin_spacing_days,
                "source": output.meta["source"],
                "data_end": output.meta["data_end"],
                "series": len(output.results),
            }
        )
        metrics = {}
        for r in output.backtest.itertuples():
            base = f"{mlflow_name(r.site)}.{mlflow_name(r.metric)}.{r.model}"
            metrics[f"{base}.mase_h{r.horizon}"] = r.mase
            metrics[f"{base}.coverage80_h{r.horizon}"] = r.coverage_80
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if pd.notna(v)})
        mlflow.log_artifacts(str(output.folder), "forecasts")
        for res in output.results:
            hist = frame[(frame.site == res.site) & (frame.metric == res.metric)]
            fig = chart(hist, res.forecast, f"{res.site}: {METRICS.get(res.metric, res.metric)}")
            mlflow.log_figure(fig, f"plots/{mlflow_name(res.site)}_{mlflow_name(res.metric)}.png")
            plt.close(fig)
        return run.info.run_id
