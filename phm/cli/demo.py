"""`phm demo`: the whole product on the embedded synthetic ICS, through the same functions the commands call."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

import typer

from phm.cli import audit, data, features, forecast, models, safety, score, service, train
from phm.cli.common import console, settings
from phm.core.settings import Settings

DEMO_CSO = "Demo Safety Officer"
DEMO_DS = "Demo Data Scientist"
INDEX_DATE = date(2024, 4, 1)

NEW_TOKEN_HINT = "`phm users rotate NAME` issues a new one"  # keeps the role and practices, ends sessions


def demo_cmd(
    persons: Annotated[int, typer.Option(help="People in the synthetic ICS.")] = 50_000,
    seed: Annotated[int, typer.Option()] = 1,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Start the service at the end (Ctrl-C stops it).")
    ] = True,
    port: Annotated[int, typer.Option(help="Port for the service.")] = 3000,
) -> None:
    """Run the product end to end on the embedded synthetic ICS: generate, load, check quality, build features,
    train and register every risk model, audit them for fairness, sign off as a demo safety officer, promote,
    write each model's CSO pack (deployment record, TRIPOD+AI checklist, publishable bias report),
    back-test and forecast bed and critical care demand, run a planning scenario, nowcast the next nights' beds,
    score today (and a week
    before, for the trend), create a demo user for each role, and start the service with its web pages."""
    from serving.batch.common import default_date
    from training.registry import MODEL_NAMES

    s = settings()
    console.rule("[bold]PHM Intelligence demo")
    console.print(f"State folder: {s.home}")
    data.generate_ics(s, persons, seed, malformed_share=0.001)
    data.load_extracts(s, allow_shrink=True, new_key=True)  # the demo replaces whatever it loaded before
    data.quality_report(s)
    for name in MODEL_NAMES:
        features.build_features(s, [INDEX_DATE], name)
    for name in MODEL_NAMES:
        train.train_model(s, name, seed)
    register_signatories(s)
    for name in MODEL_NAMES:
        audit_and_sign_off(s, name)
    models.list_versions(s)
    console.rule("Bed and critical care demand")
    forecast.fit_forecasts(s, forecast.forecast_config(None))
    forecast.show_forecast(s, "ICS", "ga_beds_occupied", 7)
    forecast.run_planning_scenario(s, "ICS", "ga_beds_occupied", 28, 0.05, 0.2)
    forecast.run_nowcast(s, "ICS")
    console.rule("Daily risk scores and the service")
    last_week = default_date(s.warehouse_path) - timedelta(days=7)
    console.print(f"Scoring as at {last_week} first, so that today's worklist shows the change over a week.")
    score.score_day(s, last_week)
    score.score_day(s)
    tokens = demo_users(s)
    console.rule("[bold green]Demo complete")
    console.print(f"Demo users, one for each role (tokens are shown once; {NEW_TOKEN_HINT}):")
    for name, _role, scope, token in tokens:
        console.print(f"  [bold]{name}[/] ({scope}): {token}", soft_wrap=True, highlight=False)
    url = f"http://127.0.0.1:{port}"
    console.print(
        f"Web pages: [bold]{url}/ui/[/] (sign in with a token above). API: {url}/api (schema at /api/openapi.json), for example\n"
        f"  curl -H 'Authorization: Bearer {tokens[0][3]}' {url}/api/worklist",
        soft_wrap=True,
        highlight=False,
    )
    if serve_after:
        service.start_service(s, port=port)
    else:
        console.print(f"Start the service with [bold]phm serve --port {port}[/].")


def demo_users(s: Settings) -> list[tuple[str, str, str, str]]:
    """One demo user per role (the coordinator scoped to the two largest practices), fresh tokens."""
    from serving.batch.store import current
    from serving.users import Role, add_user

    _, scores = current(s)
    practices = scores.practice_code.value_counts().index[:2].tolist()
    out = []
    for name, role, scope in (
        ("Demo Coordinator", Role.coordinator, practices),
        ("Demo Planner", Role.planner, []),
        (DEMO_CSO, Role.safety_officer, []),
        (DEMO_DS, Role.data_scientist, []),
    ):
        user, token = add_user(s.home, name, role, scope, replace=True)
        scope_text = {
            Role.coordinator: "people in " + ", ".join(user.practices),
            Role.planner: "aggregates, forecasts",
            Role.safety_officer: "bias reports, decisions",
            Role.data_scientist: "models, reports, aggregates",
        }[role]
        out.append((user.name, role.value, scope_text, token))
    return out


def register_signatories(s: Settings) -> None:
    """The demo's safety officer and data scientist as service users: decisions and promotions are recorded
    against named users (their tokens are issued afresh, with the others, at the end of the demo)."""
    from serving.users import Role, add_user

    for name, role in ((DEMO_CSO, Role.safety_officer), (DEMO_DS, Role.data_scientist)):
        add_user(s.home, name, role, [], replace=True)


def audit_and_sign_off(s: Settings, name: str) -> None:
    """Audit the candidate at its operating policy, record a demo sign-off of that report and the configuration it
    runs under, and promote it (a real deployment has a named CSO decide after reading the report)."""
    from evaluation.fairness.config import AuditConfig
    from models.specs.policy import resolve

    console.rule(f"Fairness audit: {name}")
    out = audit.audit_version(
        s, name, None, AuditConfig(mitigation="group_thresholds", top_share=resolve(s, name).top_share)
    )
    version = out.result.subject["version"]
    flags = len(out.result.flags)
    reason = (
        "Demo sign-off: the audit passed."
        if not flags
        else f"Demo sign-off on synthetic data: {flags} flag(s) accepted so the demo can continue; "
        "a real safety officer decides after reading the report."
    )
    safety.record_decision(s, name, version, "approved", DEMO_CSO, reason, accept_flags=bool(flags))
    models.promote_version(s, name, version, by=DEMO_DS)
    console.print(f"{name} version {version} approved by {DEMO_CSO} and promoted to [bold]champion[/].")
    audit.write_pack(s, name, version)
