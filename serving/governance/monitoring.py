"""Monitoring a deployed (champion) model: realised performance, calibration and fairness once outcomes have
matured, compared with the values recorded at sign-off; input drift (population stability index of each
predictor and of the score, overall and by broad ethnic group; group mix; missingness); alerts with
thresholds from typed configuration; whether retraining is due. Results are saved under
`$PHM_HOME/monitoring/`, logged to MLflow against the model version, and a fairness metric leaving
tolerance adds an entry to the hazard log."""

from __future__ import annotations

import json
import re
import tempfile
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Literal

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from pydantic import BaseModel, Field
from sklearn.metrics import roc_auc_score

from phm.core.config import Document
from serving.governance import hazard_log
from evaluation.fairness.audit import run_audit
from evaluation.fairness.config import AuditConfig
from evaluation.fairness.groups import STANDARD_GROUPINGS, audit_frame, standard_labels
from serving.governance.model_audit import hazard_log_path, latest_report, load_scores
from evaluation.metrics import calibration_slope_intercept
from evaluation.programme import listing
from features.build import build
from features.sources.codes import BROAD_ETHNIC_GROUP
from features.series import data_end
from models import specs
from phm.core.settings import Settings
from training import tracking
from training.safe_learning import weights as safe_weights, window_end

EXPERIMENT = "phm-monitoring"
Kind = Literal["performance", "calibration", "fairness", "drift", "age"]


class MonitorConfig(Document):
    """Alert thresholds (defaults follow common practice: PSI 0.25 is a major shift)."""

    auroc_drop: float = Field(0.05, gt=0, description="Alert when realised AUROC falls this far below sign-off.")
    observed_to_expected: tuple[float, float] = Field((0.8, 1.25), description="Tolerated observed/expected events.")
    calibration_slope: tuple[float, float] = Field((0.7, 1.3), description="Tolerated realised calibration slope.")
    psi_alert: float = Field(0.25, gt=0, description="Population stability index that raises a drift alert.")
    group_psi_alert: float = Field(0.15, gt=0, description="PSI of the score or a predictor within a broad ethnic group "
                                   "that alerts (a moderate shift: a community's change is diluted overall).")
    min_group_people: int = Field(200, ge=20, description="Smaller groups are not judged for drift.")
    mix_change: float = Field(0.05, gt=0, description="Alert when a group's share of the population moves this much.")
    missing_change: float = Field(0.10, gt=0, description="Alert when a predictor's missing share moves this much.")
    max_age_days: int = Field(400, ge=30, description="Retraining is due when the model is older than this.")
    clock_features: dict[str, float] = Field(
        default_factory=lambda: {"registered_days": 1.0, "age": 1 / 365.25},
        description="Predictors that grow with time (per day): the reference population is aged to the monitoring "
                    "date before comparing, so the passage of time is not reported as drift.")
    fairness_groupings: list[str] = Field(
        default_factory=lambda: ["ethnicity_broad", "ethnicity", "imd_quintile", "core20", "ethnicity_x_deprivation"],
        description="Groupings whose fairness is monitored (ethnicity and deprivation).")
    fairness: AuditConfig = Field(default_factory=lambda: AuditConfig(bootstrap_draws=300))


class Alert(BaseModel):
    kind: Kind
    metric: str
    subject: str = Field(description="The feature, group or 'overall' the alert is about.")
    value: float | None
    threshold: str
    message: str


class MonitorResult(BaseModel):
    model: str
    version: str
    as_of: str
    created_at: str
    outcome_index_date: str | None
    reference_index_date: str
    performance: dict[str, float | None]
    signoff: dict[str, float | None]
    by_band: list[dict]
    fairness_flags: list[dict]
    drift: list[dict]
    group_drift: list[dict]
    mix: list[dict]
    alerts: list[Alert]
    retrain_due: bool
    retrain_reasons: list[str]
    programme: dict = {}  # realised observed/expected by listing status (`programme_view`), when anyone was listed


def programme_view(settings: Settings, name: str, known: pd.DataFrame, y: np.ndarray, p: np.ndarray
                   ) -> tuple[dict, np.ndarray | None]:
    """Observed/expected among the people listed and shown, the held-out and the never listed before the end of
    their outcome window (`evaluation.programme.listing`), and the weights that judge the model without the
    people the programme may have treated (`training.safe_learning`, holdout mode; None without a holdout: the
    listed cannot then be stood for, and the figures say so)."""
    record = listing.read(settings, name)
    if record.empty:
        return {}, None
    spec = specs.get(name)
    first = known.person_id.map(record.set_index("person_id").first_listed)
    listed = (first.notna() & (first < window_end(known, spec))).to_numpy()
    held = listed & known.person_id.map(record.set_index("person_id").held_out).eq(True).to_numpy()
    view = {}
    for group, mask in (("listed_and_shown", listed & ~held), ("held_out", held), ("never_listed", ~listed)):
        view[group] = {"people": int(mask.sum()), "observed": int(y[mask].sum()), "expected": float(p[mask].sum()),
                       "observed_to_expected": float(y[mask].sum() / p[mask].sum()) if mask.any() else None}
    weights = safe_weights(settings, spec, known, "holdout") if held.any() else None
    view["performance_judged_on"] = ("the never listed and the held-out (weighted for the listed)" if held.any() else
                                     "everyone, the listed included: with no holdout their outcomes may show the "
                                     "programme's success as the model over-predicting")
    return view, weights


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index of `current` against `reference` (quantile bins of the reference;
    missing values are their own bin)."""
    ref, cur = np.asarray(reference, float), np.asarray(current, float)
    edges = np.unique(np.nanquantile(ref, np.linspace(0, 1, bins + 1)[1:-1])) if np.isfinite(ref).any() else np.array([])

    def shares(x: np.ndarray) -> np.ndarray:
        missing = np.isnan(x)
        counts = np.bincount(np.searchsorted(edges, x[~missing], side="right"), minlength=edges.size + 1)
        return np.append(counts, missing.sum()) / max(x.size, 1)

    p, q = np.clip(shares(ref), 1e-4, None), np.clip(shares(cur), 1e-4, None)
    return float(np.sum((q - p) * np.log(q / p)))


def _features(settings: Settings, name: str, day: date, folder: Path) -> tuple[pd.DataFrame, dict]:
    path = folder / f"{name}_{day}.parquet"
    manifest = build(settings.warehouse_path, specs.get(name).build_config([day]), path)
    return pd.read_parquet(path), manifest


def _broad(frame: pd.DataFrame) -> pd.Series:
    return frame["ethnic_category"].map(BROAD_ETHNIC_GROUP).fillna("Unknown")


def run_monitor(settings: Settings, name: str, as_of: date | None = None,
                cfg: MonitorConfig | None = None) -> MonitorResult:
    """Monitor the champion version of `name` as at `as_of` (default: the end of the data)."""
    cfg = cfg or MonitorConfig()
    tracking.configure(settings)
    client = MlflowClient()
    try:
        mv = client.get_model_version_by_alias(name, "champion")
    except MlflowException as exc:
        raise ValueError(f"{name} has no champion to monitor; promote a version first") from exc
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion").unwrap_python_model().model
    predictors = list(model.feature_names_in_)
    _, params = load_scores(name, int(mv.version))
    run_metrics = client.get_run(mv.run_id).data.metrics
    as_of = as_of or data_end(settings.warehouse_path)
    logged = re.findall(r"\d{4}-\d{2}-\d{2}", params.get("validation_dates", ""))  # a list or "first..last (n dates)"
    reference_day = date.fromisoformat(logged[-1]) if logged else as_of - timedelta(days=365)
    alerts: list[Alert] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        reference, _ = _features(settings, name, reference_day, folder)
        current, _ = _features(settings, name, as_of, folder)
        outcome_day = as_of - timedelta(days=specs.get(name).horizon_days)
        matured, manifest = _features(settings, name, outcome_day, folder) if outcome_day >= reference_day else (None, None)

    # ---- realised performance, calibration and fairness (outcomes matured) ----
    programme: dict = {}
    performance: dict[str, float | None] = {}
    by_band: list[dict] = []
    flags: list[dict] = []
    signoff = {"auroc": run_metrics.get("val_auroc"), "calibration_slope": run_metrics.get("val_calibration_slope")}
    if matured is not None:
        label = manifest["label"]["column"]
        known = matured[matured[label].notna()]
        y = known[label].to_numpy(dtype=int)
        p = model.predict_proba(known[predictors].astype("float64"))[:, 1]
        programme, w = programme_view(settings, name, known, y, p)
        if w is not None:  # judged without the people the programme may have treated, the holdout standing for them
            keep = w > 0
            known, y, p, w = known[keep], y[keep], p[keep], w[keep]
        slope, intercept = calibration_slope_intercept(y, p, w)
        performance = {"auroc": float(roc_auc_score(y, p, sample_weight=w)) if 0 < y.sum() < y.size else None,
                       "calibration_slope": slope, "calibration_intercept": intercept,
                       "observed_to_expected": float(np.average(y, weights=w) / np.average(p, weights=w)),
                       "people": float(y.size)}
        order = np.argsort(-p, kind="stable")
        for band, lo, hi in (("very high", 0, 0.005), ("high", 0.005, 0.02), ("raised", 0.02, 0.05), ("routine", 0.05, 1)):
            idx = order[int(lo * y.size):int(np.ceil(hi * y.size))]
            by_band.append({"band": band, "people": int(idx.size), "observed": int(y[idx].sum()),
                            "expected": float(p[idx].sum())})
        if performance["auroc"] is not None and signoff["auroc"] is not None \
                and performance["auroc"] < signoff["auroc"] - cfg.auroc_drop:
            alerts.append(Alert(kind="performance", metric="auroc", subject="overall", value=performance["auroc"],
                                threshold=f">= {signoff['auroc'] - cfg.auroc_drop:.3f}",
                                message=f"realised AUROC {performance['auroc']:.3f} vs {signoff['auroc']:.3f} at sign-off"))
        lo, hi = cfg.observed_to_expected
        oe = performance["observed_to_expected"]
        if not lo <= oe <= hi:
            alerts.append(Alert(kind="calibration", metric="observed_to_expected", subject="overall", value=oe,
                                threshold=f"{lo}-{hi}", message=f"{oe:.2f} times the predicted number of events happened"))
        lo, hi = cfg.calibration_slope
        if not lo <= slope <= hi:
            alerts.append(Alert(kind="calibration", metric="calibration_slope", subject="overall", value=slope,
                                threshold=f"{lo}-{hi}", message=f"realised calibration slope {slope:.2f}"))
        groupings = [g for g in STANDARD_GROUPINGS if g.name in cfg.fairness_groupings]
        audit = run_audit(standard_labels(audit_frame(known, label, p)), groupings, cfg.fairness,
                          {"kind": "monitoring", "model": name, "version": int(mv.version), "index_date": str(outcome_day)})
        at_signoff = latest_report(name, int(mv.version)) or {}
        before = {(f["grouping"], f["group"], f["metric"]) for f in at_signoff.get("flags", [])}
        for f in audit.flags:
            if f.grouping == "overall":  # calibration for everyone: the calibration alerts above judge it
                continue
            flags.append(f.model_dump())
            if (f.grouping, f.group, f.metric) not in before:
                alerts.append(Alert(kind="fairness", metric=f.metric, subject=f"{f.grouping}: {f.group}", value=f.ratio,
                                    threshold=f"ratio {cfg.fairness.tolerance[0]}-{cfg.fairness.tolerance[1]}",
                                    message=f"{f.group} ({f.grouping}): {f.metric} ratio {f.ratio:.2f} against "
                                            f"{f.reference_group}, not flagged at sign-off"))

    # ---- input drift: predictors, score, group mix, missingness ----
    elapsed = (as_of - reference_day).days
    reference = reference.assign(**{c: reference[c] + rate * elapsed for c, rate in cfg.clock_features.items()
                                    if c in reference and c in predictors})
    drift = []
    for col in predictors:
        ref, cur = reference[col].to_numpy(float), current[col].to_numpy(float)
        value = psi(ref, cur)
        miss = float(np.isnan(cur).mean() - np.isnan(ref).mean())
        drift.append({"feature": col, "psi": value, "missing_change": miss})
        if value > cfg.psi_alert:
            alerts.append(Alert(kind="drift", metric="psi", subject=col, value=value, threshold=f"<= {cfg.psi_alert}",
                                message=f"{col} has shifted (PSI {value:.2f})"))
        if abs(miss) > cfg.missing_change:
            alerts.append(Alert(kind="drift", metric="missing_change", subject=col, value=miss,
                                threshold=f"|change| <= {cfg.missing_change}",
                                message=f"{col} is missing for {miss:+.0%} more people"))
    ref_score = model.predict_proba(reference[predictors].astype("float64"))[:, 1]
    cur_score = model.predict_proba(current[predictors].astype("float64"))[:, 1]
    score_psi = psi(ref_score, cur_score)
    drift.append({"feature": "score", "psi": score_psi, "missing_change": 0.0})
    if score_psi > cfg.psi_alert:
        alerts.append(Alert(kind="drift", metric="psi", subject="score", value=score_psi, threshold=f"<= {cfg.psi_alert}",
                            message=f"the distribution of predicted risk has shifted (PSI {score_psi:.2f})"))
    group_drift = []
    ref_g, cur_g = _broad(reference), _broad(current)
    for group in sorted(set(ref_g) | set(cur_g)):
        r, c = ref_score[(ref_g == group).to_numpy()], cur_score[(cur_g == group).to_numpy()]
        if min(r.size, c.size) < cfg.min_group_people:
            continue
        value = psi(r, c)
        in_ref, in_cur = (ref_g == group).to_numpy(), (cur_g == group).to_numpy()
        moved = sorted(((psi(reference.loc[in_ref, col].to_numpy(float), current.loc[in_cur, col].to_numpy(float)), col)
                        for col in predictors), reverse=True)[:5]
        group_drift.append({"group": group, "psi": value, "people": int(c.size), "mean_risk_before": float(r.mean()),
                            "mean_risk_now": float(c.mean()),
                            "features": [{"feature": col, "psi": v} for v, col in moved]})
        for v, col in moved:
            if v > cfg.group_psi_alert:
                alerts.append(Alert(kind="drift", metric="psi_by_group", subject=f"Ethnicity (broad group): {group}: {col}",
                                    value=v, threshold=f"<= {cfg.group_psi_alert}",
                                    message=f"{col} has shifted among {group} people (PSI {v:.2f})"))
        if value > cfg.group_psi_alert:
            alerts.append(Alert(kind="drift", metric="score_psi_by_group", subject=f"Ethnicity (broad group): {group}",
                                value=value, threshold=f"<= {cfg.group_psi_alert}",
                                message=f"predicted risk of {group} people has shifted (PSI {value:.2f}; mean "
                                        f"{r.mean():.3f} -> {c.mean():.3f})"))
    mix = []
    for group in sorted(set(ref_g) | set(cur_g)):
        change = float((cur_g == group).mean() - (ref_g == group).mean())
        mix.append({"group": group, "share_before": float((ref_g == group).mean()), "change": change})
        if abs(change) > cfg.mix_change:
            alerts.append(Alert(kind="drift", metric="group_mix", subject=f"Ethnicity (broad group): {group}",
                                value=change, threshold=f"|change| <= {cfg.mix_change}",
                                message=f"{group} share of the population moved {change:+.1%}"))
    age_days = (datetime.now(timezone.utc) - datetime.fromtimestamp(mv.creation_timestamp / 1000, timezone.utc)).days
    if age_days > cfg.max_age_days:
        alerts.append(Alert(kind="age", metric="model_age_days", subject="overall", value=float(age_days),
                            threshold=f"<= {cfg.max_age_days}", message=f"the model is {age_days} days old"))
    reasons = sorted({a.kind for a in alerts})
    return MonitorResult(model=name, version=str(mv.version), as_of=str(as_of),
                         created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                         outcome_index_date=str(outcome_day) if matured is not None else None,
                         reference_index_date=str(reference_day), performance=performance, signoff=signoff,
                         by_band=by_band, fairness_flags=flags, drift=drift, group_drift=group_drift, mix=mix,
                         alerts=alerts, retrain_due=bool(alerts), retrain_reasons=reasons, programme=programme)


def record(settings: Settings, result: MonitorResult) -> Path:
    """Save the result (latest per model), log it to MLflow against the version, tag the version, and add a
    hazard-log entry for each fairness alert."""
    folder = settings.home / "monitoring"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{result.model}_v{result.version}_{result.as_of}.json"
    path.write_text(result.model_dump_json(indent=1))
    latest = folder / "latest.json"
    current = json.loads(latest.read_text()) if latest.exists() else {}
    current[result.model] = json.loads(result.model_dump_json())
    tmp = latest.with_suffix(".tmp")
    tmp.write_text(json.dumps(current, indent=1))
    tmp.replace(latest)
    tracking.configure(settings)
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name=f"{result.model} v{result.version} as at {result.as_of}"):
        mlflow.set_tags({"phm.model": result.model, "phm.version": result.version, "phm.as_of": result.as_of})
        mlflow.log_metrics({f"realised_{k}": v for k, v in result.performance.items() if v is not None})
        mlflow.log_metrics({"alerts": len(result.alerts), "max_psi": max((d["psi"] for d in result.drift), default=0.0)})
        mlflow.log_dict(json.loads(result.model_dump_json()), "monitoring.json")
    client = MlflowClient()
    status = f"alerts ({len(result.alerts)})" if result.alerts else "ok"
    client.set_model_version_tag(result.model, result.version, "monitoring_status", status)
    client.set_model_version_tag(result.model, result.version, "monitoring_as_of", result.as_of)
    for a in result.alerts:
        if a.kind == "fairness":
            hazard_log.append(hazard_log_path(settings), "monitoring", model=result.model, version=int(result.version),
                              as_of=result.as_of, metric=a.metric, subject=a.subject, value=a.value, message=a.message,
                              status="open")
    return path


def latest(settings: Settings) -> dict:
    """The latest monitoring result of each model (empty when never run)."""
    path = settings.home / "monitoring" / "latest.json"
    return json.loads(path.read_text()) if path.exists() else {}
