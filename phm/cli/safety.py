"""The clinical safety officer's commands of the `phm audit` group (registered on it in `phm.cli`): approve or
reject a version's audit report, review a change to the configuration in force, show a version's safety case,
and show and check the hazard log."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from models import specs
from phm.cli.common import MODEL_HELP, console, fail, model_name, registered, settings
from phm.cli.render import governance, ledgers
from phm.core.settings import Settings


CSO = ("safety_officer",)


def record_decision(
    s: Settings,
    name: str,
    version: int,
    decision: str,
    by: str,
    reason: str,
    accept_flags: bool,
    report: Optional[str] = None,
) -> dict:
    """Record a named safety officer's decision on the version's current report (and in the hazard log): the same
    record as the Equity page's form. `by` must be a registered safety officer (`phm users add`)."""
    from serving.governance.safety_case import SafetyCaseError
    from serving.governance.signoff import decide

    officer = registered(s, by, CSO, "clinical safety officer")
    try:
        record = decide(s, name, version, decision, officer, reason, accept_flags, report=report, via="cli")
    except SafetyCaseError as exc:
        raise fail(str(exc)) from exc
    console.print(
        f"{name} version {version} [bold]{decision}[/] by {record['decision_by']} at {record['decision_at']} "
        f"(report {record['decision_report_sha256'][:16]}...; configuration "
        f"{record['configuration_sha256'][:12]}; hazard log entry {record['hazard_log_seq']})"
    )
    return record


def review_change(
    s: Settings, name: str, version: Optional[int], decision: str, by: str, reason: str, expected: Optional[str]
) -> dict:
    """Record a named safety officer's change-impact review of the configuration in force (default: the champion)."""
    from serving.governance.safety_case import SafetyCaseError, review_change as review

    officer = registered(s, by, CSO, "clinical safety officer")
    version = version or champion_version(s, name)
    try:
        entry = review(s, name, version, decision, officer, reason, expected=expected, via="cli")
    except SafetyCaseError as exc:
        raise fail(str(exc)) from exc
    console.print(
        f"Configuration change of {name} version {version} [bold]{decision}[/] by {entry['by']} at "
        f"{entry['at']} (configuration {entry['configuration_sha256'][:12]}; hazard log entry {entry['seq']}):"
    )
    for d in entry["differences"]:
        console.print(f"  {d}", soft_wrap=True)
    return entry


def champion_version(s: Settings, name: str) -> int:
    from training import registry, tracking

    tracking.configure(s)
    found = registry.alias_version(name, "champion")
    if found is None:
        raise fail(f"{name} has no champion; name the version with --version")
    return found


def show_case(s: Settings, name: str, version: Optional[int]) -> dict:
    """Print a version's safety case (default: the champion): may it be used, and what changed since approval."""
    from serving.governance.safety_case import SafetyCaseError, case
    from models.specs.policy import PolicyError

    version = version or champion_version(s, name)
    try:
        summary = case(s, name, version).summary()
    except (SafetyCaseError, PolicyError) as exc:
        raise fail(str(exc)) from exc
    governance.safety_case(summary)
    return summary


ByOption = Annotated[
    str,
    typer.Option(
        help="Name of the clinical safety officer: a registered user with the "
        "safety_officer role (`phm users add NAME --role safety_officer`)."
    ),
]
ReportOption = Annotated[
    Optional[str],
    typer.Option(
        help="SHA-256 (or its first 8+ characters) of the report you read; refused if a newer audit replaced it."
    ),
]


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
ConfigurationOption = Annotated[
    Optional[str],
    typer.Option(
        help="Fingerprint (or its first 8+ characters) of the configuration you reviewed (`phm audit status`)."
    ),
]


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


def reject_change_cmd(
    model: Annotated[str, typer.Option(help=MODEL_HELP)],
    by: ByOption,
    reason: Annotated[str, typer.Option(help="Why the changed configuration must not be used.")],
    version: ChangeVersion = None,
    configuration: ConfigurationOption = None,
) -> None:
    """Change-impact review: reject the configuration now in force (final for that configuration)."""
    review_change(settings(), model_name(model), version, "rejected", by, reason, configuration)


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
    from training import registry, tracking

    tracking.configure(s)
    shown = 0
    for name in specs.NAMES:
        if registry.alias_version(name, "champion") is None:
            continue
        show_case(s, name, None)
        shown += 1
    if not shown:
        console.print("No champion yet: name a model and version (`phm audit status --model M --version N`).")


def log_cmd(
    verify_only: Annotated[bool, typer.Option("--verify", help="Only check the log.")] = False,
    adopt: Annotated[
        bool,
        typer.Option(
            "--adopt", help="Sign the head of a log written before heads were signed (after checking its chain)."
        ),
    ] = False,
) -> None:
    """Show the hazard log (hazards, audits, decisions, promotions) and check that it is intact: its hash chain,
    every entry's signature and its signed head (entries cut from the end, an emptied or deleted log)."""
    from serving.governance import hazard_log
    from serving.governance.hazard_log import hazard_log_path

    path = hazard_log_path(settings())
    if adopt:
        try:
            hazard_log.adopt(path)
        except hazard_log.LedgerError as exc:
            raise fail(str(exc)) from exc
        console.print(f"Signed the head of {path}.")
    found = hazard_log.check(path)
    if not verify_only and found.intact:
        ledgers.hazard_log(path, hazard_log.read(path))
    ledgers.ledger_notes(found.notes)
    if found.problems:
        raise fail(f"{path} has been altered: " + "; ".join(found.problems))
    head = f"; signed head at entry {found.head.seq}" if found.head else ""
    console.print(f"Hazard log intact ({found.entries} entries{head}).")
