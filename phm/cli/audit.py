"""`phm audit`: fairness audits of registered versions and of any score table, the clinical safety officer's
decisions, and the hazard log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from phm.cli import render
from phm.cli.common import EngineOption, MODEL_HELP, console, engine_choice, fail, model_name, settings, stages, typed_config
from models import specs
from phm.core.settings import Settings

app = typer.Typer(help="Fairness audit, bias reports and clinical safety sign-off.", no_args_is_help=True)


def audit_config(config: Optional[Path], **overrides):
    from evaluation.fairness.config import AuditConfig

    return typed_config(AuditConfig, config, overrides)


def audit_version(s: Settings, name: str, version: Optional[int], cfg, engine: Optional[str] = None):
    """Audit a registered version (default: the candidate), log the bias report, print the flags."""
    from evaluation.fairness.audit import AuditInputError
    from features.engine import EngineError
    from serving.governance.model_audit import audit_model

    try:
        with stages(f"Auditing {name}", 8) as advance:
            out = audit_model(s, name, version, cfg, progress=advance, engine=engine_choice(engine))
    except (AuditInputError, EngineError) as exc:
        raise fail(str(exc)) from exc
    console.print(f"{name} version {out.result.subject['version']}: "
                  + ("[green]passed[/]" if out.result.passed else f"[red]{len(out.result.flags)} flag(s)[/]")
                  + f"; logged to MLflow as {out.artifact_path}")
    render.audit(out.result, out.html_path, out.json_path)
    return out


def record_decision(s: Settings, name: str, version: int, decision: str, by: str, reason: str,
                    accept_flags: bool) -> dict:
    """Record a safety officer's decision on a version (and in the hazard log)."""
    from serving.governance.signoff import SignoffError, decide

    try:
        record = decide(s, name, version, decision, by, reason, accept_flags)
    except SignoffError as exc:
        raise fail(str(exc)) from exc
    console.print(f"{name} version {version} [bold]{decision}[/] by {record['decision_by']} at {record['decision_at']} "
                  f"(report {record['decision_report_sha256'][:16]}...; hazard log entry {record['hazard_log_seq']})")
    return record


@app.command("run")
def run_cmd(
    model: Annotated[Optional[str], typer.Option(help=MODEL_HELP + " Default: the worklist model.")] = None,
    version: Annotated[Optional[int], typer.Option(help="Model version (default: the `candidate` alias).")] = None,
    top_share: Annotated[Optional[float], typer.Option(help="Operating policy: flag the highest-risk share (0.05 = 5%).")] = None,
    draws: Annotated[Optional[int], typer.Option(help="Bootstrap draws (default 1000).")] = None,
    mitigation: Annotated[bool, typer.Option(help="Also show group-specific thresholds side by side.")] = False,
    config: Annotated[Optional[Path], typer.Option(help="Audit configuration (JSON, fields of AuditConfig).")] = None,
    engine: EngineOption = None,
) -> None:
    """Audit a registered model version by ethnicity, deprivation, sex and age; log the bias report to MLflow.
    With --engine spark the validation population is rebuilt, scored and aggregated on Spark."""
    cfg = audit_config(config, top_share=top_share, bootstrap_draws=draws,
                       mitigation="group_thresholds" if mitigation else None)
    audit_version(settings(), model_name(model) if model else specs.worklist().name, version, cfg, engine)


@app.command("scores")
def scores_cmd(
    file: Annotated[Path, typer.Argument(help="CSV or Parquet table with one row per person (or person-period).")],
    score: Annotated[str, typer.Option(help="Column holding the risk score.")],
    outcome: Annotated[str, typer.Option(help="Column holding the observed outcome (0/1).")],
    group: Annotated[list[str], typer.Option(help="Group column to audit by (repeatable).")],
    reference: Annotated[Optional[list[str]], typer.Option(help="Reference group as COLUMN=VALUE (repeatable).")] = None,
    age: Annotated[Optional[str], typer.Option(help="Age or age-band column (for age-sex adjusted comparisons).")] = None,
    sex: Annotated[Optional[str], typer.Option(help="Sex column (for age-sex adjusted comparisons).")] = None,
    person: Annotated[Optional[str], typer.Option(help="Person id column when people have several rows.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Name of the tool being audited (shown in the report).")] = None,
    top_share: Annotated[Optional[float], typer.Option(help="Operating policy: flag the highest-risk share.")] = None,
    threshold: Annotated[Optional[float], typer.Option(help="A fixed score threshold instead of a top share.")] = None,
    draws: Annotated[Optional[int], typer.Option(help="Bootstrap draws (default 1000).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Folder for the report (default: $PHM_HOME/reports/audits/NAME).")] = None,
    config: Annotated[Optional[Path], typer.Option(help="Audit configuration (JSON).")] = None,
) -> None:
    """Audit any table of risk scores and outcomes (for example another tool's output) on the same footing."""
    from evaluation.fairness.audit import AuditInputError
    from evaluation.fairness.external import ScoresTableError, audit_table
    from serving.governance.model_audit import write_report

    s = settings()
    refs = {}
    for item in reference or []:
        if "=" not in item:
            raise fail(f"--reference {item!r}: write COLUMN=VALUE")
        k, v = item.split("=", 1)
        refs[k] = v
    cfg = audit_config(config, top_share=top_share, threshold=threshold, bootstrap_draws=draws)
    label = name or file.stem
    try:
        with stages(f"Auditing {label}", len(group) + 1) as advance:
            result, rejected = audit_table(file, score=score, outcome=outcome, groups=group, references=refs, age=age,
                                           sex=sex, person=person, name=label, cfg=cfg, progress=advance)
    except (ScoresTableError, AuditInputError) as exc:
        raise fail(str(exc)) from exc
    target = out or s.reports_dir / "audits" / label
    html_path, json_path = write_report(result, target)
    if len(rejected):
        rejected.to_csv(target / "quarantine.csv", index=False)
        console.print(f"[yellow]{len(rejected):,} row(s) could not be audited; see {target / 'quarantine.csv'} "
                      f"(first: row {rejected.source_row.iloc[0]}, {rejected.quarantine_reason.iloc[0]})[/]")
    console.print(f"{label}: " + ("[green]passed[/]" if result.passed else f"[red]{len(result.flags)} flag(s)[/]"))
    render.audit(result, html_path, json_path)


@app.command("approve")
def approve_cmd(
    model: Annotated[str, typer.Option(help=MODEL_HELP)],
    version: Annotated[int, typer.Option(help="Model version.")],
    by: Annotated[str, typer.Option(help="Name of the clinical safety officer.")],
    reason: Annotated[str, typer.Option(help="Why the model is acceptable (and the controls relied on).")],
    accept_flags: Annotated[bool, typer.Option(help="Explicitly accept the audit's flags with controls.")] = False,
) -> None:
    """Approve an audited version (recorded on the version and in the hazard log)."""
    record_decision(settings(), model_name(model), version, "approved", by, reason, accept_flags)


@app.command("reject")
def reject_cmd(
    model: Annotated[str, typer.Option(help=MODEL_HELP)],
    version: Annotated[int, typer.Option(help="Model version.")],
    by: Annotated[str, typer.Option(help="Name of the clinical safety officer.")],
    reason: Annotated[str, typer.Option(help="Why the model must not be deployed.")],
) -> None:
    """Reject an audited version: it can never be promoted."""
    record_decision(settings(), model_name(model), version, "rejected", by, reason, False)


@app.command("log")
def log_cmd(verify_only: Annotated[bool, typer.Option("--verify", help="Only check the log.")] = False,
            adopt: Annotated[bool, typer.Option("--adopt", help="Sign the head of a log written before heads were "
                                                "signed (after checking its chain).")] = False) -> None:
    """Show the hazard log (hazards, audits, decisions, promotions) and check that it is intact: its hash chain,
    every entry's signature and its signed head (entries cut from the end, an emptied or deleted log)."""
    from serving.governance import hazard_log
    from serving.governance.model_audit import hazard_log_path

    path = hazard_log_path(settings())
    if adopt:
        try:
            hazard_log.adopt(path)
        except hazard_log.LedgerError as exc:
            raise fail(str(exc)) from exc
        console.print(f"Signed the head of {path}.")
    found = hazard_log.check(path)
    if not verify_only and found.intact:
        render.hazard_log(path, hazard_log.read(path))
    render.ledger_notes(found.notes)
    if found.problems:
        raise fail(f"{path} has been altered: " + "; ".join(found.problems))
    head = f"; signed head at entry {found.head.seq}" if found.head else ""
    console.print(f"Hazard log intact ({found.entries} entries{head}).")
