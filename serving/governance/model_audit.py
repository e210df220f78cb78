"""Audit a registered model version on its validation period, write the bias report (HTML + JSON),
log it to the version's MLflow run, tag the version and open hazard log entries for any flags."""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from evaluation.disclosure import Policy
from evaluation.fairness import report_html
from serving.governance import hazard_log
from serving.governance.hazard_log import hazard_log_path
from serving.governance.safety_case import SafetyCaseError
from evaluation.fairness.audit import AuditInputError, run_audit
from evaluation.fairness.config import AuditConfig
from evaluation.fairness.groups import STANDARD_COVERAGE, STANDARD_GROUPINGS, coverage_descriptions, standard_labels
from evaluation.fairness.results import AuditResult
from models import specs
from phm.core.settings import Settings
from training import registry, tracking


@dataclass
class AuditOutput:
    result: AuditResult
    html_path: Path
    json_path: Path
    artifact_path: str


def resolve_version(name: str, version: int | None, alias: str = "candidate") -> int:
    client = MlflowClient()
    try:
        if version is None:
            return int(client.get_model_version_by_alias(name, alias).version)
        client.get_model_version(name, str(version))
        return int(version)
    except MlflowException as exc:
        registry.missing_or_raise(exc)  # a failing store is said as such, not "no such version"
        what = f"version {version}" if version is not None else f"alias {alias!r}"
        raise AuditInputError(f"model {name!r} has no {what} in the registry; see `phm models list`") from exc


def load_scores(name: str, version: int) -> tuple[pd.DataFrame, dict]:
    """The validation scores logged by the training run of this version, and the run's parameters."""
    client = MlflowClient()
    mv = client.get_model_version(name, str(version))
    run = client.get_run(mv.run_id)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(
                run_id=mv.run_id, artifact_path="validation/scores.parquet", dst_path=tmp
            )
        except (MlflowException, OSError) as exc:
            raise AuditInputError(
                f"{name} version {version} (run {mv.run_id}) has no validation scores to audit; "
                f"retrain it with `phm train {specs.get(name).cli_name}`"
            ) from exc
        frame = pd.read_parquet(path)
    return frame, {"run_id": mv.run_id, **run.data.params}


def audit_model(
    settings: Settings, name: str, version: int | None, cfg: AuditConfig, progress=None, engine: str | None = None
) -> AuditOutput:
    """Audit a version on its validation period, record the report and hazards. In-process from the validation
    scores its training run logged, or on Spark (`engine`, else the `engine` setting): features rebuilt at the
    run's validation dates, scored on the executors and audited from aggregates."""
    tracking.configure(settings)
    version = resolve_version(name, version)
    problem = registry.run_files_problem(name, version)
    if problem:
        raise AuditInputError(
            f"{name} version {version} cannot be audited: {problem}, so its validation scores and metrics do not "
            f"describe it. Register models by training them (`phm train {specs.get(name).cli_name}`), then audit "
            "that version"
        )
    if (engine or settings.engine) == "spark":
        result, params = audit_on_spark(settings, name, version, cfg, progress)
    else:
        frame, params = load_scores(name, version)
        frame = standard_labels(frame)
        repeated = frame["person_id"].duplicated().any()
        subject = _subject(
            settings,
            name,
            version,
            params,
            "person-days (several per person; bootstrap by person)" if repeated else "people",
            data=validated_on(params["run_id"]),
        )
        result = run_audit(
            frame,
            STANDARD_GROUPINGS,
            cfg,
            subject,
            cluster="person_id" if repeated else None,
            coverage=STANDARD_COVERAGE,
            coverage_descriptions=coverage_descriptions(frame, STANDARD_COVERAGE),
            progress=progress,
            disclosure=Policy.from_settings(settings),
        )
    return _record(settings, name, version, result, params)


def validated_on(run_id: str) -> str:
    """The data the training run's validation scores came from (its validation features' manifest): what the
    figures of an in-process audit describe, whatever the warehouse holds now."""
    try:
        manifest = mlflow.artifacts.load_dict(f"runs:/{run_id}/features/validation_manifest.json")
    except (MlflowException, OSError, ValueError) as exc:
        raise AuditInputError(f"run {run_id} has no validation features' manifest: retrain the version") from exc
    return str(manifest.get("data_source") or "linked ICS warehouse")


def _subject(settings: Settings, name: str, version: int, params: dict, unit: str, data: str | None = None) -> dict:
    """Who and what was audited; `data`: where the audited scores' data came from (default: the warehouse now)."""
    return {
        "kind": "registered model",
        "model": name,
        "version": version,
        "run_id": params["run_id"],
        "outcome": specs.get(name).outcome,
        "validation_dates": params.get("validation_dates"),
        "feature_definition_hash": params.get("feature_definition_hash"),
        "data": data if data is not None else _source(settings),
        "unit": unit,
    }


def audit_on_spark(settings: Settings, name: str, version: int, cfg: AuditConfig, progress) -> tuple[AuditResult, dict]:
    from features.build import build
    from features.engine.spark_engine import SparkEngine
    from models.batch import score_spark
    from evaluation.fairness.spark_audit import audit_rows_spark, run_audit_spark
    from training.config import TrainConfig

    say = progress or (lambda _m: None)
    client = MlflowClient()
    mv = client.get_model_version(name, str(version))
    params = {"run_id": mv.run_id, **client.get_run(mv.run_id).data.params}
    train = TrainConfig.model_validate(mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/train_config.json"))
    if len(train.validation_dates) > 1:
        raise AuditInputError(
            f"{name} validates on {len(train.validation_dates)} dates (several rows per person): "
            "its bootstrap by person needs the rows, so audit it in-process (without --engine spark)"
        )
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}").unwrap_python_model().model
    with SparkEngine(settings) as engine:
        say(f"building validation features as at {train.validation_dates[0]} on Spark")
        out = settings.features_dir / f"{name}_v{version}_validation_spark.parquet"
        build(engine, train.spec.build_config(train.validation_dates), out)
        features = engine.spark.read.parquet(str(out.resolve()))
        say(f"scoring with {name} version {version} on the executors")
        scored = score_spark(features, model, features.columns)
        frame = audit_rows_spark(scored, train.label)
        subject = _subject(settings, name, version, params, "people")
        result = run_audit_spark(
            frame,
            STANDARD_GROUPINGS,
            cfg,
            subject,
            coverage=STANDARD_COVERAGE,
            coverage_descriptions=coverage_descriptions(frame.columns, STANDARD_COVERAGE),
            progress=progress,
        )
    return result, params


def _record(settings: Settings, name: str, version: int, result: AuditResult, params: dict) -> AuditOutput:
    """Write the report, log it to the version's run, tag the version and append to the hazard log."""
    out_dir = settings.reports_dir / "audits" / f"{name}_v{version}"
    html_path, json_path = write_report(result, out_dir)
    artifact_path = f"audit/{result.report_sha256[:12]}"
    client = MlflowClient()
    model_sha256 = registry.files_sha256(name, version)  # the audit, and any approval of it, covers these files
    client.log_artifacts(params["run_id"], str(out_dir), artifact_path)
    status = "passed" if result.passed else f"flagged ({len(result.flags)})"
    for key, value in {
        "audit_status": status,
        "audit_report_sha256": result.report_sha256,
        "audit_report_artifact": artifact_path,
        "audit_flags": str(len(result.flags)),
        "audit_at": result.created_at,
        "audit_model_sha256": model_sha256,
    }.items():
        client.set_model_version_tag(name, str(version), key, value)
    client.log_metric(params["run_id"], "audit_flags", float(len(result.flags)))
    log = hazard_log_path(settings)
    for h in result.hazards:
        hazard_log.append(
            log,
            "hazard",
            model=name,
            version=version,
            report_sha256=result.report_sha256,
            status="open",
            **h.model_dump(),
        )
    hazard_log.append(
        log,
        "audit",
        model=name,
        version=version,
        report_sha256=result.report_sha256,
        outcome=status,
        flags=len(result.flags),
        model_sha256=model_sha256,
    )
    return AuditOutput(result, html_path, json_path, artifact_path)


def write_report(result: AuditResult, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "bias_report.json"
    html_path = out_dir / "bias_report.html"
    json_path.write_text(json.dumps(result.model_dump(mode="json"), indent=1))
    html_path.write_text(report_html.render(result))
    return html_path, json_path


def _source(settings: Settings) -> str:
    """Where the warehouse's data came from (recorded by the loader)."""
    import duckdb

    from features.sources.extracts import warehouse_source

    if not settings.warehouse_path.exists():
        return "linked ICS warehouse"
    try:
        con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    except duckdb.Error:
        return "linked ICS warehouse"
    try:
        return warehouse_source(con)
    finally:
        con.close()


class ReportIntegrityError(SafetyCaseError):
    """The stored bias report is not the report its version's audit recorded (altered, or another version's)."""


def latest_report(name: str, version: int) -> dict | None:
    """The bias report JSON recorded for a version (None when it was never audited), verified: its content hashes
    to the SHA-256 the version's audit recorded (the one a safety officer approves), and it is this version's."""
    client = MlflowClient()
    mv = client.get_model_version(name, str(version))
    tags = mv.tags or {}
    artifact = tags.get("audit_report_artifact")
    if not artifact:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(
            run_id=mv.run_id, artifact_path=f"{artifact}/bias_report.json", dst_path=tmp
        )
        report = json.loads(Path(path).read_text())
    return verified(report, name, version, tags.get("audit_report_sha256") or "")


def verified(report: dict, name: str, version: int, recorded: str) -> dict:
    """`report` if its canonical content (as `AuditResult.content_hash`) hashes to `recorded` and its subject is
    `name` version `version`; else ReportIntegrityError naming what differs."""
    where = f"the bias report stored for {name} version {version}"
    body = {k: v for k, v in report.items() if k != "report_sha256"}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    if digest != recorded or report.get("report_sha256") != recorded:
        raise ReportIntegrityError(
            f"{where} is not the report its audit recorded ({recorded[:12] or 'none'}): its content hashes to "
            f"{digest[:12]}, so it was altered or replaced after the audit; nothing may be decided on it. Audit the "
            "version again (`phm audit run`)"
        )
    subject = report.get("subject") or {}
    if subject.get("kind") == "registered model" and (subject.get("model"), subject.get("version")) != (
        name,
        int(version),
    ):
        raise ReportIntegrityError(
            f"{where} is the report of {subject.get('model')} version {subject.get('version')}; audit this "
            "version (`phm audit run`)"
        )
    return report
