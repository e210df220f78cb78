"""`phm audit`: fairness audits of registered versions and of any score table, the clinical safety officer's
decisions, and the hazard log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from phm.cli import render
from phm.cli.common import (EngineOption, MODEL_HELP, console, engine_choice, fail, model_name, registered, settings,
                            stages, typed_config)
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


CSO = ("safety_officer",)


def record_decision(s: Settings, name: str, version: int, decision: str, by: str, reason: str,
                    accept_flags: bool, report: Optional[str] = None) -> dict:
    """Record a named safety officer's decision on the version's current report (and in the hazard log): the same
    record as the Equity page's form. `by` must be a registered safety officer (`phm users add`)."""
    from serving.governance.safety_case import SafetyCaseError
    from serving.governance.signoff import decide

    officer = registered(s, by, CSO, "clinical safety officer")
    try:
        record = decide(s, name, version, decision, officer, reason, accept_flags, report=report, via="cli")
    except SafetyCaseError as exc:
        raise fail(str(exc)) from exc
    console.print(f"{name} version {version} [bold]{decision}[/] by {record['decision_by']} at {record['decision_at']} "
                  f"(report {record['decision_report_sha256'][:16]}...; configuration "
                  f"{record['configuration_sha256'][:12]}; hazard log entry {record['hazard_log_seq']})")
    return record


def review_change(s: Settings, name: str, version: Optional[int], decision: str, by: str, reason: str,
                  expected: Optional[str]) -> dict:
    """Record a named safety officer's change-impact review of the configuration in force (default: the champion)."""
    from serving.governance.safety_case import SafetyCaseError, review_change as review

    officer = registered(s, by, CSO, "clinical safety officer")
    version = version or champion_version(s, name)
    try:
        entry = review(s, name, version, decision, officer, reason, expected=expected, via="cli")
    except SafetyCaseError as exc:
        raise fail(str(exc)) from exc
    console.print(f"Configuration change of {name} version {version} [bold]{decision}[/] by {entry['by']} at "
                  f"{entry['at']} (configuration {entry['configuration_sha256'][:12]}; hazard log entry {entry['seq']}):")
    for d in entry["differences"]:
        console.print(f"  {d}", soft_wrap=True)
    return entry


def champion_version(s: Settings, name: str) -> int:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from training import tracking

    tracking.configure(s)
    try:
        return int(MlflowClient().get_model_version_by_alias(name, "champion").version)
    except MlflowException as exc:
        raise fail(f"{name} has no champion; name the version with --version") from exc


def show_case(s: Settings, name: str, version: Optional[int]) -> dict:
    """Print a version's safety case (default: the champion): may it be used, and what changed since approval."""
    from serving.governance.safety_case import SafetyCaseError, case
    from models.specs.policy import PolicyError

    version = version or champion_version(s, name)
    try:
        summary = case(s, name, version).summary()
    except (SafetyCaseError, PolicyError) as exc:
        raise fail(str(exc)) from exc
    render.safety_case(summary)
    return summary


@app.command("run")
def run_cmd(
    model: Annotated[Optional[str], typer.Option(help=MODEL_HELP + " Default: the worklist model.")] = None,
    version: Annotated[Optional[int], typer.Option(help="Model version (default: the `candidate` alias).")] = None,
    top_share: Annotated[Optional[float], typer.Option(help="Operating policy: flag the highest-risk share (0.05 = 5%). "
                                                        "Default: the model's operating policy (`phm config show`).")] = None,
    draws: Annotated[Optional[int], typer.Option(help="Bootstrap draws (default 1000).")] = None,
    mitigation: Annotated[bool, typer.Option(help="Also show group-specific thresholds side by side.")] = False,
    config: Annotated[Optional[Path], typer.Option(help="Audit configuration (JSON, fields of AuditConfig).")] = None,
    engine: EngineOption = None,
) -> None:
    """Audit a registered model version by ethnicity, deprivation, sex and age; log the bias report to MLflow.
    With --engine spark the validation population is rebuilt, scored and aggregated on Spark."""
    s = settings()
    name = model_name(model) if model else specs.worklist().name
    if top_share is None and not _sets_operating_point(config):  # judge fairness where the model is used
        from models.specs.policy import resolve

        top_share = resolve(s, name).top_share
    cfg = audit_config(config, top_share=top_share, bootstrap_draws=draws,
                       mitigation="group_thresholds" if mitigation else None)
    audit_version(s, name, version, cfg, engine)


def _sets_operating_point(config: Optional[Path]) -> bool:
    """Does the audit configuration file set its own operating point (top_share or threshold)?"""
    import json

    try:
        raw = json.loads(config.read_text()) if config else {}
    except (OSError, ValueError):
        return False  # `typed_config` reports the problem with the file
    return isinstance(raw, dict) and ("top_share" in raw or raw.get("threshold") is not None)


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
    from evaluation.disclosure import Policy
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
                                           sex=sex, person=person, name=label, cfg=cfg, progress=advance,
                                           disclosure=Policy.from_settings(s))
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


def write_pack(s: Settings, name: str, version: Optional[int]) -> tuple[dict, Path]:
    """Write the CSO pack of a version (default: the champion, else the candidate) and print where it is."""
    from evaluation.fairness.audit import AuditInputError
    from serving.governance.cso_pack import write
    from serving.governance.model_audit import resolve_version
    from serving.governance.safety_case import SafetyCaseError
    from training import tracking

    tracking.configure(s)
    try:
        if version is None:
            try:
                version = resolve_version(name, None, "champion")
            except AuditInputError:
                version = resolve_version(name, None, "candidate")
        else:
            version = resolve_version(name, version)
        pack, out = write(s, name, version)
    except (AuditInputError, SafetyCaseError) as exc:
        raise fail(str(exc)) from exc
    rec = pack["deployment_record"]
    human = sum(i["source"] == "human" for i in pack["tripod_ai"])
    console.print(f"{name} version {version}: deployment record ({len(rec['hazards'])} hazards, residual risk "
                  f"{rec['residual_risk']['words']}, {'signed off by ' + str(rec['sign_off']['by']) if rec['sign_off']['signed'] else 'not signed off'}), "
                  f"TRIPOD+AI checklist ({len(pack['tripod_ai'])} items, {human} for a person to answer) and the "
                  f"publishable bias report written to [bold]{out}[/] and logged to MLflow.", soft_wrap=True)
    return pack, out


@app.command("pack")
def pack_cmd(
    model: Annotated[Optional[str], typer.Option(help=MODEL_HELP + " Default: the worklist model.")] = None,
    version: Annotated[Optional[int], typer.Option(help="Model version (default: the champion, else the candidate).")] = None,
) -> None:
    """The clinical safety officer's pack: a DCB0160-style deployment record, a TRIPOD+AI checklist filled from the run
    with links to its evidence, and the bias report safe to publish (disclosure control applied)."""
    s = settings()
    write_pack(s, model_name(model) if model else specs.worklist().name, version)


ByOption = Annotated[str, typer.Option(help="Name of the clinical safety officer: a registered user with the "
                                               "safety_officer role (`phm users add NAME --role safety_officer`).")]
ReportOption = Annotated[Optional[str], typer.Option(
    help="SHA-256 (or its first 8+ characters) of the report you read; refused if a newer audit replaced it.")]


@app.command("approve")
def approve_cmd(
    model: Annotated[str, typer.Option(help=MODEL_HELP)],
    version: Annotated[int, typer.Option(help="Model version.")],
    by: ByOption,
    reason: Annotated[str, typer.Option(help="Why the model is acceptable (and the controls relied on).")],
    accept_flags: Annotated[bool, typer.Option(help="Explicitly accept the audit's flags with controls.")] = False,
    report: ReportOption = None,
) -> None:
    """Approve a version's current audit report and the configuration it runs under (recorded on the version and in
    the hazard log). Every version needs this before promotion, flagged or not; a rejected report cannot be approved."""
    record_decision(settings(), model_name(model), version, "approved", by, reason, accept_flags, report)


@app.command("reject")
def reject_cmd(
    model: Annotated[str, typer.Option(help=MODEL_HELP)],
    version: Annotated[int, typer.Option(help="Model version.")],
    by: ByOption,
    reason: Annotated[str, typer.Option(help="Why the model must not be deployed.")],
    report: ReportOption = None,
) -> None:
    """Reject a version's current audit report: final for that report (only a new audit reopens the decision)."""
    record_decision(settings(), model_name(model), version, "rejected", by, reason, False, report)


ChangeVersion = Annotated[Optional[int], typer.Option(help="Model version (default: the champion).")]
ConfigurationOption = Annotated[Optional[str], typer.Option(
    help="Fingerprint (or its first 8+ characters) of the configuration you reviewed (`phm audit status`).")]


@app.command("approve-change")
def approve_change_cmd(
    model: Annotated[str, typer.Option(help=MODEL_HELP)],
    by: ByOption,
    reason: Annotated[str, typer.Option(help="The change's impact on safety and the controls relied on.")],
    version: ChangeVersion = None,
    configuration: ConfigurationOption = None,
) -> None:
    """Change-impact review: approve the configuration now in force (band cut-offs, operating policy, feature
    definitions, population, data source) for an approved version, naming every difference in the hazard log."""
    review_change(settings(), model_name(model), version, "approved", by, reason, configuration)


@app.command("reject-change")
def reject_change_cmd(
    model: Annotated[str, typer.Option(help=MODEL_HELP)],
    by: ByOption,
    reason: Annotated[str, typer.Option(help="Why the changed configuration must not be used.")],
    version: ChangeVersion = None,
    configuration: ConfigurationOption = None,
) -> None:
    """Change-impact review: reject the configuration now in force (final for that configuration)."""
    review_change(settings(), model_name(model), version, "rejected", by, reason, configuration)


@app.command("status")
def status_cmd(
    model: Annotated[Optional[str], typer.Option(help=MODEL_HELP + " Default: every model with a champion.")] = None,
    version: ChangeVersion = None,
) -> None:
    """The safety case of a version: whether it may be used, the configuration in force and what changed since a
    safety officer approved it."""
    s = settings()
    if model:
        show_case(s, model_name(model), version)
        return
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from training import tracking

    tracking.configure(s)
    shown = 0
    for name in specs.NAMES:
        try:
            MlflowClient().get_model_version_by_alias(name, "champion")
        except MlflowException:
            continue
        show_case(s, name, None)
        shown += 1
    if not shown:
        console.print("No champion yet: name a model and version (`phm audit status --model M --version N`).")


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
