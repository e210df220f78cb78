"""A training run end to end: fit (training layer), validate on the later period, log everything
to MLflow (parameters, feature manifests, metrics, plots, model card, the model) and register a
version with alias `candidate`.

This orchestration lives in `evaluation` because it needs both the training layer below it and
the metrics here; training itself never imports evaluation.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import duckdb
import mlflow
import numpy as np
import pandas as pd

from evaluation import model_card, plots
from evaluation.fairness.groups import audit_frame
from evaluation.metrics import auroc, evaluate
from features.sources.codes import BROAD_ETHNIC_GROUP, RESCUE_PACK
from features.definitions.catalogue import FEATURE_SETS
from models.explain import reasons
from phm.core.settings import Settings
from training import registry, tracking
from training.config import TrainConfig
from training.jobs import FittedJob, fit

Progress = Callable[[str], None]
SYMPTOM_RULE = 5.0  # symptom score (0-10) averaged over 7 days at or above which the rule flags


@dataclass
class RunResult:
    run_id: str
    version: int
    metrics: dict[str, float]
    card: dict


def rule_score(job: FittedJob) -> tuple[str, np.ndarray]:
    """The simple comparator: prior emergency admissions, or a symptom-threshold rule."""
    v = job.validation
    if job.cfg.model_name == "emergency_admission":
        return "prior emergency admissions (12 months)", v.emergency_admissions_12m.to_numpy(dtype=float)
    flag = (v.hm_symptom_score_mean_7d.fillna(0) >= SYMPTOM_RULE).to_numpy(dtype=float)
    return f"symptom score >= {SYMPTOM_RULE:g} (7-day mean)", flag


def oracle_probabilities(job: FittedJob, settings: Settings) -> pd.Series | None:
    """The generator's true probabilities for the validation rows (synthetic data only)."""
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        keys = job.validation[["person_id", "index_date"]].copy()
        keys["index_date"] = pd.to_datetime(keys.index_date)
        if job.cfg.model_name == "emergency_admission" and "truth_emergency_admission_12m" in tables:
            truth = con.execute("SELECT person_id, CAST(index_date AS TIMESTAMP) AS index_date, p_true "
                                "FROM truth_emergency_admission_12m").df()
        elif job.cfg.model_name == "flare_up" and "truth_flare_up_14d" in tables:
            truth = con.execute("SELECT person_id, CAST(date AS TIMESTAMP) + INTERVAL 1 DAY AS index_date, p_true "
                                "FROM truth_flare_up_14d").df()  # truth at the end of the day before
        else:
            return None
    finally:
        con.close()
    truth["index_date"] = pd.to_datetime(truth.index_date)
    merged = keys.merge(truth, on=["person_id", "index_date"], how="left")
    return pd.Series(merged.p_true.to_numpy(), index=job.validation.index)


def exacerbation_dates(settings: Settings, persons: np.ndarray) -> pd.DataFrame:
    """Rescue courses and COPD/asthma emergency admissions (the flare-up outcome events)."""
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    con.register("who", pd.DataFrame({"person_id": persons}))
    try:
        return con.execute("""SELECT DISTINCT person_id, issue_date AS event_date FROM prescriptions
            WHERE bnf_code = ? AND person_id IN (SELECT person_id FROM who)
            UNION SELECT DISTINCT person_id, admission_date FROM apc_spells WHERE person_id IN (SELECT person_id FROM who)
            AND admission_method LIKE '2%' AND substr(primary_diagnosis, 1, 3) IN ('J40','J41','J42','J43','J44','J45','J46')
            """, [RESCUE_PACK[0]]).df()
    finally:
        con.close()


def lead_times(validation: pd.DataFrame, risk: np.ndarray, events: pd.DataFrame, threshold: float) -> dict:
    """For each exacerbation in the validation period: was a warning (risk >= threshold) given in the
    14 days before it, and how many days ahead was the first one?"""
    scored = pd.DataFrame({"person_id": validation.person_id.to_numpy(),
                           "day": pd.to_datetime(validation.index_date).to_numpy(), "risk": risk})
    first, last = scored.day.min(), scored.day.max()
    ev = events.assign(event_date=pd.to_datetime(events.event_date))
    ev = ev[(ev.event_date > first + timedelta(days=14)) & (ev.event_date <= last)]
    alerts = scored[scored.risk >= threshold]
    joined = ev.merge(alerts, on="person_id")
    lead = (joined.event_date - joined.day).dt.days
    joined = joined[(lead >= 1) & (lead <= 14)].assign(lead=lead)
    best = joined.groupby(["person_id", "event_date"]).lead.max()
    n = len(ev.drop_duplicates(["person_id", "event_date"]))
    return {"events": int(n), "warned": int(best.size), "share_warned": float(best.size / n) if n else float("nan"),
            "median_lead_days": float(best.median()) if best.size else float("nan")}


def subgroups(job: FittedJob, y: np.ndarray, p: np.ndarray) -> list[dict]:
    """A first look by group (the full fairness audit is a separate step)."""
    v = job.validation
    groups = {
        "age band": v.age_band,
        "sex": v.sex,
        "IMD quintile": ((v.imd_decile.fillna(0) + 1) // 2).astype(int).astype(str).replace("0", "unknown"),
        "ethnicity": v.ethnic_category.map(BROAD_ETHNIC_GROUP).fillna("Unknown"),
    }
    rows = []
    for grouping, labels in groups.items():
        for value in sorted(labels.unique()):
            m = (labels == value).to_numpy()
            rows.append({"grouping": grouping, "group": value, "n": int(m.sum()), "events": int(y[m].sum()),
                         "observed": float(y[m].mean()), "mean_predicted": float(p[m].mean()),
                         "auroc": auroc(y[m], p[m]) if m.sum() >= 50 else float("nan")})
    return rows


def _flat_params(cfg: TrainConfig, job: FittedJob) -> dict[str, str]:
    dates = lambda ds: ds[0].isoformat() if len(ds) == 1 else f"{ds[0]}..{ds[-1]} ({len(ds)} dates)"  # noqa: E731
    return {
        "model_name": cfg.model_name, "feature_set": cfg.feature_set, "seed": str(cfg.seed),
        "train_dates": dates(cfg.train_dates), "validation_dates": dates(cfg.validation_dates),
        "calibration": cfg.calibration, "feature_definition_hash": job.manifests["train"]["definition_hash"],
        "warehouse_as_of": str(job.manifests["train"]["warehouse_as_of"]),
        "data_end": job.manifests["train"]["data_end"], "n_predictors": str(len(job.predictors)),
        "train_rows": str(len(job.train)), "validation_rows": str(len(job.validation)),
        **{f"lgbm_{k}": str(v) for k, v in job.chosen.model_dump().items()},
        "lgbm_best_iteration": str(job.model.best_iteration_),
        **{f"rows_{k}": str(v) for k, v in job.parts.items()},
    }


def run(cfg: TrainConfig, settings: Settings, progress: Progress | None = None, engine: str | None = None) -> RunResult:
    say = progress or (lambda _m: None)
    job = fit(cfg, settings, say, engine)
    say("validating on the later period")
    v = job.validation
    y = v[cfg.label].astype(int).to_numpy()
    X = v[job.predictors].astype("float64")
    p_model = job.model.predict_proba(X)[:, 1]
    p_base = job.baseline.predict_proba(X)[:, 1]
    rule_name, p_rule = rule_score(job)
    perf = evaluate(y, p_model, cfg.bootstrap_draws, cfg.seed)
    base_perf = evaluate(y, p_base, max(20, cfg.bootstrap_draws // 4), cfg.seed)
    rule_auc = auroc(y, p_rule)
    metrics = {**perf.flat("val_"), "baseline_auroc": base_perf.auroc, "baseline_auprc": base_perf.auprc,
               "baseline_brier": base_perf.brier, "baseline_calibration_slope": base_perf.calibration_slope,
               "rule_auroc": rule_auc, "best_iteration": float(job.model.best_iteration_)}
    comparators = {"LightGBM (this model)": {"auroc": perf.auroc, "auprc": perf.auprc, "brier": perf.brier},
                   "logistic regression baseline": {"auroc": base_perf.auroc, "auprc": base_perf.auprc,
                                                    "brier": base_perf.brier},
                   rule_name: {"auroc": rule_auc, "auprc": float("nan"), "brier": float("nan")}}
    oracle = None
    truth = oracle_probabilities(job, settings)
    if truth is not None and truth.notna().sum() > 0:
        ok = truth.notna().to_numpy()
        o_auc, m_auc = auroc(y[ok], truth.to_numpy()[ok]), auroc(y[ok], p_model[ok])
        oracle = {"rows_with_truth": int(ok.sum()), "oracle_auroc": o_auc, "model_auroc": m_auc,
                  "model_oracle_ratio": m_auc / o_auc}
        metrics.update({"oracle_auroc": o_auc, "model_oracle_ratio": m_auc / o_auc})
    extra = {}
    if cfg.model_name == "flare_up":
        events = exacerbation_dates(settings, v.person_id.unique())
        threshold = float(np.quantile(p_model, 0.9))
        warn = lead_times(v, p_model, events, threshold)
        warn_rule = lead_times(v, p_rule, events, 0.5)
        extra["warnings"] = {"operating_threshold": threshold, "policy": "alert when risk is in the top 10% of "
                             "person-days", "model": warn, "symptom_rule": warn_rule}
        metrics.update({"warn_median_lead_days": warn["median_lead_days"], "warn_share": warn["share_warned"],
                        "rule_warn_share": warn_rule["share_warned"]})
    gain = job.model.importance()
    descriptions = {f.name: f.description for f in FEATURE_SETS[cfg.feature_set].features}
    importance = [{"feature": k, "share_of_gain": float(g / max(gain.sum(), 1e-12)), "description": descriptions.get(k, "")}
                  for k, g in gain.head(15).items()]

    tracking.configure(settings)
    exp = tracking.experiment_id(settings, cfg.experiment or f"phm-{cfg.model_name}")
    say("logging to MLflow and registering")
    with mlflow.start_run(experiment_id=exp, run_name=f"{cfg.model_name}-seed{cfg.seed}") as active:
        run_id = active.info.run_id
        mlflow.log_params(_flat_params(cfg, job))
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)})
        mlflow.log_dict(json.loads(cfg.model_dump_json()), "train_config.json")
        for name, manifest in job.manifests.items():
            mlflow.log_dict(manifest, f"features/{name}_manifest.json")
        mlflow.log_dict({"grid": job.tuning, "chosen": job.chosen.model_dump()}, "tuning.json")
        mlflow.log_dict(json.loads(perf.model_dump_json()), "validation/performance.json")
        mlflow.set_tags({"phm.model": cfg.model_name, "phm.feature_hash": job.manifests["train"]["definition_hash"],
                         "phm.reproduce": f"phm train {cfg.model_name.replace('_', '-')} --config train_config.json"})
        scores = {"LightGBM": p_model, "Logistic baseline": p_base, "Rule": p_rule}
        for name, fig in (("roc", plots.roc(y, scores)), ("precision_recall", plots.precision_recall(y, scores)),
                          ("calibration", plots.calibration(perf)), ("decision_curve", plots.decision_curve(perf)),
                          ("feature_importance", plots.importance(gain))):
            mlflow.log_figure(fig, f"plots/{name}.png")
            plots.close(fig)
        with tempfile.TemporaryDirectory() as tmp:  # what the fairness audit reads back
            scores_path = Path(tmp) / "scores.parquet"
            audit_frame(v, cfg.label, p_model).to_parquet(scores_path, index=False)
            mlflow.log_artifact(str(scores_path), "validation")
        example_rows = X.head(5)
        mlflow.log_dict({"examples": reasons(job.model, example_rows)}, "validation/example_reasons.json")
        info = tracking.log_risk_model(job.model, example_rows, registered_name=cfg.model_name)
        version = int(info.registered_model_version)
        card = model_card.build_card(
            model_name=cfg.model_name, version=version, run_id=run_id,
            cfg={"calibration": cfg.calibration, "chosen": job.chosen.model_dump(), "tuning": job.tuning, "seed": cfg.seed},
            manifests=job.manifests, predictors=job.predictors, descriptions=descriptions,
            performance=json.loads(perf.model_dump_json()), comparators=comparators, oracle=oracle,
            subgroups=subgroups(job, y, p_model), importance=importance, extra=extra)
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "model_card.json").write_text(json.dumps(card, indent=2, default=str))
            (Path(tmp) / "model_card.html").write_text(model_card.render_html(card))
            mlflow.log_artifacts(tmp, "model_card")
    registry.set_alias(cfg.model_name, version, "candidate")
    client = mlflow.MlflowClient()
    client.set_model_version_tag(cfg.model_name, str(version), "audit_status", "not audited")
    client.set_model_version_tag(cfg.model_name, str(version), "feature_hash", job.manifests["train"]["definition_hash"])
    client.update_model_version(cfg.model_name, str(version),
                                description=f"AUROC {perf.auroc:.3f} on {cfg.validation_dates[0]}"
                                + (f"..{cfg.validation_dates[-1]}" if len(cfg.validation_dates) > 1 else "")
                                + f"; trained on {len(job.train):,} rows; run {run_id}")
    return RunResult(run_id=run_id, version=version, metrics=metrics, card=card)
