"""A training run end to end: fit (`training.jobs`), validate on the later period with the metrics of
`evaluation`, log everything to MLflow (parameters, feature manifests, metrics, plots, model card, the model)
and register a version with alias `candidate`. What differs between models (baseline rule, ground truth,
extra validation such as warning lead times) comes from the model's specification."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import mlflow
import numpy as np
import pandas as pd

from evaluation import model_card, plots
from evaluation.fairness.groups import audit_frame
from evaluation.metrics import auroc, evaluate
from features.sources.codes import BROAD_ETHNIC_GROUP
from models.explain import reasons
from phm.core.settings import Settings
from training import registry, tracking
from training.config import TrainConfig
from training.jobs import FittedJob, fit

Progress = Callable[[str], None]


@dataclass
class RunResult:
    run_id: str
    version: int
    metrics: dict[str, float]
    card: dict
    config: TrainConfig | None = None  # as run: with the index dates used
    dates_note: str = ""  # how the dates were chosen


def oracle_probabilities(job: FittedJob, settings: Settings) -> pd.Series | None:
    """The generator's true probabilities for the validation rows (synthetic data only)."""
    truth_spec = job.cfg.spec.truth
    if truth_spec is None:
        return None
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if truth_spec.table not in tables:
            return None
        truth = con.execute(
            f'SELECT person_id, CAST("{truth_spec.date_column}" AS TIMESTAMP) '
            f"+ INTERVAL {int(truth_spec.day_offset)} DAY AS index_date, p_true "
            f'FROM "{truth_spec.table}"'
        ).df()
    finally:
        con.close()
    keys = job.validation[["person_id", "index_date"]].copy()
    keys["index_date"] = pd.to_datetime(keys.index_date)
    truth["index_date"] = pd.to_datetime(truth.index_date)
    merged = keys.merge(truth, on=["person_id", "index_date"], how="left")
    return pd.Series(merged.p_true.to_numpy(), index=job.validation.index)


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
            rows.append(
                {
                    "grouping": grouping,
                    "group": value,
                    "n": int(m.sum()),
                    "events": int(y[m].sum()),
                    "observed": float(y[m].mean()),
                    "mean_predicted": float(p[m].mean()),
                    "auroc": auroc(y[m], p[m]) if m.sum() >= 50 else float("nan"),
                }
            )
    return rows


def composite_examples(X: pd.DataFrame, rows: int = 5) -> pd.DataFrame:
    """Example inputs that are nobody's record: row i holds each predictor's (i + 1)/(rows + 1) quantile
    (interpolated), so the examples logged with the model (its input example, the example reasons), which travel
    wherever the model does, carry no real person's health record."""
    return X.quantile(np.linspace(0, 1, rows + 2)[1:-1]).reset_index(drop=True).astype("float64")


def _flat_params(cfg: TrainConfig, job: FittedJob) -> dict[str, str]:
    dates = lambda ds: ds[0].isoformat() if len(ds) == 1 else f"{ds[0]}..{ds[-1]} ({len(ds)} dates)"  # noqa: E731
    return {
        "model_name": cfg.model_name,
        "feature_set": cfg.spec.features.name,
        "seed": str(cfg.seed),
        "train_dates": dates(cfg.train_dates),
        "validation_dates": dates(cfg.validation_dates),
        "calibration": cfg.calibration,
        "feature_definition_hash": job.manifests["train"]["definition_hash"],
        "warehouse_as_of": str(job.manifests["train"]["warehouse_as_of"]),
        "data_end": job.manifests["train"]["data_end"],
        "n_predictors": str(len(job.predictors)),
        "train_rows": str(len(job.train)),
        "validation_rows": str(len(job.validation)),
        **{f"lgbm_{k}": str(v) for k, v in job.chosen.model_dump().items()},
        "lgbm_best_iteration": str(job.model.best_iteration_),
        **{f"rows_{k}": str(v) for k, v in job.parts.items()},
    }


def run(cfg: TrainConfig, settings: Settings, progress: Progress | None = None, engine: str | None = None) -> RunResult:
    say = progress or (lambda _m: None)
    job = fit(cfg, settings, say, engine)
    cfg = job.cfg  # with the index dates used (recorded, so the run can be reproduced)
    say("validating on the later period")
    v = job.validation
    y = v[cfg.label].astype(int).to_numpy()
    X = v[job.predictors].astype("float64")
    p_model = job.model.predict_proba(X)[:, 1]
    p_base = job.baseline.predict_proba(X)[:, 1]
    spec = cfg.spec
    rule_name, p_rule = spec.baseline.title, spec.baseline.score(v)
    several = "person_id" in v and v.person_id.duplicated().any()  # validated on several dates: rows per person
    person = v.person_id.to_numpy() if several else None
    perf = evaluate(y, p_model, cfg.bootstrap_draws, cfg.seed, person)
    base_perf = evaluate(y, p_base, max(20, cfg.bootstrap_draws // 4), cfg.seed, person)
    rule_auc = auroc(y, p_rule)
    metrics = {
        **perf.flat("val_"),
        "baseline_auroc": base_perf.auroc,
        "baseline_auprc": base_perf.auprc,
        "baseline_brier": base_perf.brier,
        "baseline_calibration_slope": base_perf.calibration_slope,
        "rule_auroc": rule_auc,
        "best_iteration": float(job.model.best_iteration_),
    }
    comparators = {
        "LightGBM (this model)": {"auroc": perf.auroc, "auprc": perf.auprc, "brier": perf.brier},
        "logistic regression baseline": {"auroc": base_perf.auroc, "auprc": base_perf.auprc, "brier": base_perf.brier},
        rule_name: {"auroc": rule_auc, "auprc": float("nan"), "brier": float("nan")},
    }
    oracle = None
    truth = oracle_probabilities(job, settings)
    if truth is not None and truth.notna().sum() > 0:
        ok = truth.notna().to_numpy()
        o_auc, m_auc = auroc(y[ok], truth.to_numpy()[ok]), auroc(y[ok], p_model[ok])
        oracle = {
            "rows_with_truth": int(ok.sum()),
            "oracle_auroc": o_auc,
            "model_auroc": m_auc,
            "model_oracle_ratio": m_auc / o_auc,
        }
        metrics.update({"oracle_auroc": o_auc, "model_oracle_ratio": m_auc / o_auc})
    extra = {}
    if spec.validation_extras is not None:
        extra, more = spec.validation_extras(settings, v, p_model, p_rule)
        metrics.update(more)
    gain = job.model.importance()
    descriptions = {f.name: f.description for f in spec.features.features}
    importance = [
        {"feature": k, "share_of_gain": float(g / max(gain.sum(), 1e-12)), "description": descriptions.get(k, "")}
        for k, g in gain.head(15).items()
    ]

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
        mlflow.set_tags(
            {
                "phm.model": cfg.model_name,
                "phm.feature_hash": job.manifests["train"]["definition_hash"],
                "phm.reproduce": f"phm train {spec.cli_name} --config train_config.json",
            }
        )
        scores = {"LightGBM": p_model, "Logistic baseline": p_base, "Rule": p_rule}
        for name, fig in (
            ("roc", plots.roc(y, scores)),
            ("precision_recall", plots.precision_recall(y, scores)),
            ("calibration", plots.calibration(perf)),
            ("decision_curve", plots.decision_curve(perf)),
            ("feature_importance", plots.importance(gain)),
        ):
            mlflow.log_figure(fig, f"plots/{name}.png")
            plots.close(fig)
        with tempfile.TemporaryDirectory() as tmp:  # what the fairness audit reads back
            scores_path = Path(tmp) / "scores.parquet"
            audit_frame(v, cfg.label, p_model).to_parquet(scores_path, index=False)
            mlflow.log_artifact(str(scores_path), "validation")
        example_rows = composite_examples(X)
        mlflow.log_dict({"examples": reasons(job.model, example_rows)}, "validation/example_reasons.json")
        info = tracking.log_risk_model(job.model, example_rows, registered_name=cfg.model_name)
        version = int(info.registered_model_version)
        card = model_card.build_card(
            spec=spec,
            version=version,
            run_id=run_id,
            cfg={
                "calibration": cfg.calibration,
                "chosen": job.chosen.model_dump(),
                "tuning": job.tuning,
                "seed": cfg.seed,
            },
            manifests=job.manifests,
            predictors=job.predictors,
            descriptions=descriptions,
            performance=json.loads(perf.model_dump_json()),
            comparators=comparators,
            oracle=oracle,
            subgroups=subgroups(job, y, p_model),
            importance=importance,
            extra=extra,
        )
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "model_card.json").write_text(json.dumps(card, indent=2, default=str))
            (Path(tmp) / "model_card.html").write_text(model_card.render_html(card))
            mlflow.log_artifacts(tmp, "model_card")
    registry.set_alias(cfg.model_name, version, "candidate")
    client = mlflow.MlflowClient()
    client.set_model_version_tag(cfg.model_name, str(version), "audit_status", "not audited")
    client.set_model_version_tag(
        cfg.model_name, str(version), "feature_hash", job.manifests["train"]["definition_hash"]
    )
    registry.record_run_files(cfg.model_name, version, run_id)  # the files these validation scores describe
    client.update_model_version(
        cfg.model_name,
        str(version),
        description=f"AUROC {perf.auroc:.3f} on {cfg.validation_dates[0]}"
        + (f"..{cfg.validation_dates[-1]}" if len(cfg.validation_dates) > 1 else "")
        + f"; trained on {len(job.train):,} rows; run {run_id}",
    )
    return RunResult(run_id=run_id, version=version, metrics=metrics, card=card, config=cfg, dates_note=job.dates_note)
