"""Monitoring a deployed (champion) model: realised performance, calibration and fairness once outcomes have
matured, compared with the values recorded at sign-off; input drift (population stability index of each
predictor and of the score, overall and by broad ethnic group; group mix; missingness); alerts with
thresholds from typed configuration; whether retraining is due. Results are saved under
`$PHM_HOME/monitoring/`, logged to MLflow against the model version, and a fairness metric leaving
tolerance adds an entry to the hazard log."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import tempfile
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from features.build import build
from features.series import data_end
from models import specs
from phm.core.settings import Settings
from serving.governance import hazard_log
from serving.governance.hazard_log import hazard_log_path
from serving.governance.model_audit import load_scores
from serving.governance.monitoring_config import Alert, MonitorConfig, MonitorResult
from serving.governance.monitoring_drift import input_drift
from serving.governance.monitoring_realised import Realised, realised
from training import registry, tracking

EXPERIMENT = "phm-monitoring"
log = logging.getLogger("phm.monitoring")


def _features(settings: Settings, name: str, day: date, folder: Path) -> tuple[pd.DataFrame, dict]:
    path = folder / f"{name}_{day}.parquet"
    manifest = build(settings.warehouse_path, specs.get(name).build_config([day]), path)
    return pd.read_parquet(path), manifest


def monitoring_date(settings: Settings, as_of: date | None) -> date:
    """`as_of`, or the end of the data; a date after the data end is refused: the warehouse holds nothing after it,
    so its predictors would look like drift and the outcomes due by then would be known only where they had
    already happened (the realised figures judged on the people who were admitted, nobody else)."""
    end = data_end(settings.warehouse_path)
    if as_of is not None and as_of > end:
        raise ValueError(
            f"--as-of {as_of} lies after the end of the data ({end}): nothing after it is in the warehouse, so "
            f"neither drift nor outcomes can be judged then; monitor as at {end} or earlier, or load newer extracts"
        )
    return as_of or end


def run_monitor(
    settings: Settings, name: str, as_of: date | None = None, cfg: MonitorConfig | None = None
) -> MonitorResult:
    """Monitor the champion version of `name` as at `as_of` (default: the end of the data)."""
    cfg = cfg or MonitorConfig()
    tracking.configure(settings)
    client = MlflowClient()
    try:
        mv = client.get_model_version_by_alias(name, "champion")
    except MlflowException as exc:
        registry.missing_or_raise(exc)  # a failing store is said as such, not "no champion"
        raise ValueError(f"{name} has no champion to monitor; promote a version first") from exc
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion").unwrap_python_model().model
    predictors = list(model.feature_names_in_)
    _, params = load_scores(name, int(mv.version))
    run_metrics = client.get_run(mv.run_id).data.metrics
    as_of = monitoring_date(settings, as_of)
    logged = re.findall(r"\d{4}-\d{2}-\d{2}", params.get("validation_dates", ""))  # a list or "first..last (n dates)"
    reference_day = date.fromisoformat(logged[-1]) if logged else as_of - timedelta(days=365)
    alerts: list[Alert] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        reference, _ = _features(settings, name, reference_day, folder)
        current, _ = _features(settings, name, as_of, folder)
        outcome_day = as_of - timedelta(days=specs.get(name).horizon_days)
        matured, manifest = (
            _features(settings, name, outcome_day, folder) if outcome_day >= reference_day else (None, None)
        )

    # ---- realised performance, calibration and fairness (outcomes matured) ----
    signoff = {"auroc": run_metrics.get("val_auroc"), "calibration_slope": run_metrics.get("val_calibration_slope")}
    seen = Realised()
    if matured is not None:
        label = manifest["label"]["column"]
        seen = realised(settings, name, int(mv.version), model, predictors, matured, label, outcome_day, signoff, cfg)
    alerts += seen.alerts

    # ---- input drift: predictors, score, group mix, missingness ----
    moved = input_drift(model, predictors, reference, current, (as_of - reference_day).days, cfg)
    alerts += moved.alerts
    age_days = (datetime.now(timezone.utc) - datetime.fromtimestamp(mv.creation_timestamp / 1000, timezone.utc)).days
    if age_days > cfg.max_age_days:
        alerts.append(
            Alert(
                kind="age",
                metric="model_age_days",
                subject="overall",
                value=float(age_days),
                threshold=f"<= {cfg.max_age_days}",
                message=f"the model is {age_days} days old",
            )
        )
    reasons = sorted({a.kind for a in alerts})
    horizon = specs.get(name).horizon_days
    not_judged = (
        None
        if matured is not None
        else f"Realised performance, calibration and fairness not judged: no outcomes have matured since the model "
        f"was validated ({reference_day}; outcomes take {horizon} days), so decay cannot show yet; the first can be "
        f"judged as at {reference_day + timedelta(days=horizon)}. Only input drift was checked"
    )
    return MonitorResult(
        model=name,
        version=str(mv.version),
        as_of=str(as_of),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        outcome_index_date=str(outcome_day) if matured is not None else None,
        reference_index_date=str(reference_day),
        performance=seen.performance,
        signoff=signoff,
        by_band=seen.by_band,
        fairness_flags=seen.flags,
        drift=moved.drift,
        group_drift=moved.group_drift,
        mix=moved.mix,
        alerts=alerts,
        retrain_due=bool(alerts),
        retrain_reasons=reasons,
        programme=seen.programme,
        not_judged=not_judged,
    )


def record(settings: Settings, result: MonitorResult) -> Path:
    """Save the result (latest per model), log it to MLflow against the version, tag the version, and add a
    hazard-log entry for each fairness alert."""
    folder = settings.home / "monitoring"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{result.model}_v{result.version}_{result.as_of}.json"
    path.write_text(result.model_dump_json(indent=1))
    with open(folder / ".latest.lock", "a") as lock:  # one run at a time updates the summary (none lost)
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = _read_latest(folder)
        current[result.model] = json.loads(result.model_dump_json())
        tmp = folder / f".latest.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(current, indent=1))
        tmp.replace(folder / "latest.json")
    tracking.configure(settings)
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name=f"{result.model} v{result.version} as at {result.as_of}"):
        mlflow.set_tags({"phm.model": result.model, "phm.version": result.version, "phm.as_of": result.as_of})
        mlflow.log_metrics({f"realised_{k}": v for k, v in result.performance.items() if v is not None})
        mlflow.log_metrics(
            {"alerts": len(result.alerts), "max_psi": max((d["psi"] for d in result.drift), default=0.0)}
        )
        mlflow.log_dict(json.loads(result.model_dump_json()), "monitoring.json")
    client = MlflowClient()
    status = (
        f"alerts ({len(result.alerts)})"
        if result.alerts
        else "no drift; outcomes not matured"
        if result.not_judged
        else "ok"
    )
    client.set_model_version_tag(result.model, result.version, "monitoring_status", status)
    client.set_model_version_tag(result.model, result.version, "monitoring_as_of", result.as_of)
    for a in result.alerts:
        if a.kind == "fairness":
            hazard_log.append(
                hazard_log_path(settings),
                "monitoring",
                model=result.model,
                version=int(result.version),
                as_of=result.as_of,
                metric=a.metric,
                subject=a.subject,
                value=a.value,
                message=a.message,
                status="open",
            )
    return path


def latest(settings: Settings) -> dict:
    """The latest monitoring result of each model (empty when never run)."""
    return _read_latest(settings.home / "monitoring")


def _read_latest(folder: Path) -> dict:
    """`latest.json`; when it is damaged (a crash, a full disk, an edit), the newest saved result of each model
    instead (each run's own file is kept), and the service log says so."""
    path = folder / "latest.json"
    if not path.exists():
        return {}
    try:
        current = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(current, dict) and all(isinstance(v, dict) for v in current.values()):
            return current
    except (OSError, UnicodeDecodeError, ValueError):
        pass
    log.error("%s is damaged; the latest monitoring results are read from each run's own file", path)
    rebuilt: dict[str, tuple[float, dict]] = {}
    for run in folder.glob("*_v*_*.json"):
        try:
            saved = MonitorResult.model_validate_json(run.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            log.error("%s: not a monitoring result; left out", run)
            continue
        when = run.stat().st_mtime
        if saved.model not in rebuilt or when >= rebuilt[saved.model][0]:
            rebuilt[saved.model] = (when, json.loads(saved.model_dump_json()))
    return {model: result for model, (_, result) in sorted(rebuilt.items())}
