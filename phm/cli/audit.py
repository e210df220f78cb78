"""`phm audit`: fairness audits of registered versions and of any score table, and the clinical safety officer's
pack. The safety officer's decisions, change reviews, a version's safety case and the hazard log are commands of
the same group, in `phm.cli.safety` (registered on this group in `phm.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from phm.cli.render import governance
from phm.cli.common import (
    EngineOption,
    MODEL_HELP,
    console,
    engine_choice,
    fail,
    model_name,
    settings,
    stages,
    typed_config,
)
from models import specs
from phm.core.settings import Settings

app = typer.Typer(help="Fairness audit, bias reports and clinical safety sign-off.", no_args_is_help=True)


def audit_config(config: Optional[Path], **overrides):
    from evaluation.fairness.config import AuditConfig

    return typed_config(AuditConfig, config, overrides)


def verdict(result) -> str:
    """The status line's word: flags, "passed", or - where no grouping could judge anything - not a pass."""
    from evaluation.fairness.narrative import unjudged

    if not result.passed:
        return f"[red]{len(result.flags)} flag(s)[/]"
    if len(unjudged(result)) == len(result.groupings):
        return "[yellow]no flags, but nothing could be judged (no evidence of fairness)[/]"
    return "[green]passed[/]"


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
    console.print(
        f"{name} version {out.result.subject['version']}: "
        + verdict(out.result)
        + f"; logged to MLflow as {out.artifact_path}"
    )
    governance.audit(out.result, out.html_path, out.json_path)
    return out


@app.command("run")
def run_cmd(
    model: Annotated[Optional[str], typer.Option(help=MODEL_HELP + " Default: the worklist model.")] = None,
    version: Annotated[Optional[int], typer.Option(help="Model version (default: the `candidate` alias).")] = None,
    top_share: Annotated[
        Optional[float],
        typer.Option(
            help="Operating policy: flag the highest-risk share (0.05 = 5%). "
            "Default: the model's operating policy (`phm config show`)."
        ),
    ] = None,
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
    cfg = audit_config(
        config, top_share=top_share, bootstrap_draws=draws, mitigation="group_thresholds" if mitigation else None
    )
    audit_version(s, name, version, cfg, engine)


def _sets_operating_point(config: Optional[Path]) -> bool:
    """Does the audit configuration file set its own operating point (top_share or threshold)?"""
    import json

    from phm.core.config import read_text

    try:
        raw = json.loads(read_text(config)) if config else {}
    except (OSError, ValueError, RecursionError):
        return False  # `typed_config` reports the problem with the file
    return isinstance(raw, dict) and ("top_share" in raw or raw.get("threshold") is not None)


@app.command("scores")
def scores_cmd(
    file: Annotated[Path, typer.Argument(help="CSV or Parquet table with one row per person (or person-period).")],
    score: Annotated[str, typer.Option(help="Column holding the risk score.")],
    outcome: Annotated[str, typer.Option(help="Column holding the observed outcome (0/1).")],
    group: Annotated[list[str], typer.Option(help="Group column to audit by (repeatable).")],
    reference: Annotated[
        Optional[list[str]], typer.Option(help="Reference group as COLUMN=VALUE (repeatable).")
    ] = None,
    age: Annotated[
        Optional[str], typer.Option(help="Age or age-band column (for age-sex adjusted comparisons).")
    ] = None,
    sex: Annotated[Optional[str], typer.Option(help="Sex column (for age-sex adjusted comparisons).")] = None,
    person: Annotated[Optional[str], typer.Option(help="Person id column when people have several rows.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Name of the tool being audited (shown in the report).")] = None,
    top_share: Annotated[Optional[float], typer.Option(help="Operating policy: flag the highest-risk share.")] = None,
    threshold: Annotated[Optional[float], typer.Option(help="A fixed score threshold instead of a top share.")] = None,
    draws: Annotated[Optional[int], typer.Option(help="Bootstrap draws (default 1000).")] = None,
    out: Annotated[
        Optional[Path], typer.Option(help="Folder for the report (default: $PHM_HOME/reports/audits/NAME).")
    ] = None,
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
            result, rejected = audit_table(
                file,
                score=score,
                outcome=outcome,
                groups=group,
                references=refs,
                age=age,
                sex=sex,
                person=person,
                name=label,
                cfg=cfg,
                progress=advance,
                disclosure=Policy.from_settings(s),
            )
    except (ScoresTableError, AuditInputError) as exc:
        raise fail(str(exc)) from exc
    target = out or s.reports_dir / "audits" / label
    html_path, json_path = write_report(result, target)
    if len(rejected):
        rejected.to_csv(target / "quarantine.csv", index=False)
        console.print(
            f"[yellow]{len(rejected):,} row(s) could not be audited; see {target / 'quarantine.csv'} "
            f"(first: row {rejected.source_row.iloc[0]}, {rejected.quarantine_reason.iloc[0]})[/]"
        )
    console.print(f"{label}: " + verdict(result))
    governance.audit(result, html_path, json_path)


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
    console.print(
        f"{name} version {version}: deployment record ({len(rec['hazards'])} hazards, residual risk "
        f"{rec['residual_risk']['words']}, {'signed off by ' + str(rec['sign_off']['by']) if rec['sign_off']['signed'] else 'not signed off'}), "
        f"TRIPOD+AI checklist ({len(pack['tripod_ai'])} items, {human} for a person to answer) and the "
        f"publishable bias report written to [bold]{out}[/] and logged to MLflow.",
        soft_wrap=True,
    )
    return pack, out


@app.command("pack")
def pack_cmd(
    model: Annotated[Optional[str], typer.Option(help=MODEL_HELP + " Default: the worklist model.")] = None,
    version: Annotated[
        Optional[int], typer.Option(help="Model version (default: the champion, else the candidate).")
    ] = None,
) -> None:
    """The clinical safety officer's pack: a DCB0160-style deployment record, a TRIPOD+AI checklist filled from the run
    with links to its evidence, and the bias report safe to publish (disclosure control applied)."""
    s = settings()
    write_pack(s, model_name(model) if model else specs.worklist().name, version)
