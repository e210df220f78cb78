"""`phm worklist outcome|hidden|caseload|export-outcomes`: contact outcomes, the people they hide, teams' caseloads
and the pseudonymised export for evaluating the programme. Each acts as a named care coordinator (`--user`) signed in
with their own service token (PHM_TOKEN, or asked for), within their practices, and is recorded in the access log
like the same request to the service."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from phm.cli.render import tables
from phm.cli.common import console, fail, settings
from phm.core.settings import Settings

app = typer.Typer(
    help="The worklist: contact outcomes, hidden people, caseloads, the evaluation export.", no_args_is_help=True
)
UserOption = Annotated[str, typer.Option("--user", help="The care coordinator acting (a registered user).")]


def _ready(s: Settings) -> None:
    """The operational database migrated to this version's tables (as the service does when it starts)."""
    from phm.operational.database import DatabaseError, upgrade

    try:
        upgrade(s)
    except DatabaseError as exc:
        raise fail(str(exc)) from exc


def _coordinator(s: Settings, name: str, route: str):
    """The enabled care coordinator `--user` names, signed in with their own service token (PHM_TOKEN, or asked
    for without echo), as in the service: a name alone would let anyone with a shell act in a coordinator's name.
    A refused sign-in is in the access log."""
    from phm.cli.reidentify import TOKEN_ENV
    from serving.users import Role, authenticate, load_users

    _ready(s)
    users = load_users(s.home)
    found = next((u for u in users if u.name == name.strip() and not u.disabled), None)
    if found is None or found.role != Role.coordinator:
        raise fail(f"--user {name!r} is not an enabled care coordinator (`phm users list`)")
    if not os.environ.get(TOKEN_ENV) and not sys.stdin.isatty():
        raise fail(f"--user {name!r}: sign in with your service token: set {TOKEN_ENV} (no terminal to ask in)")
    token = os.environ.get(TOKEN_ENV) or typer.prompt("Service token", hide_input=True)
    signed_in = authenticate(users, token.strip())
    if signed_in is None or signed_in.name != found.name:
        try:
            _logged(s, signed_in, route, 401, [], [])
        except typer.Exit:
            pass
        raise fail(f"--user {name!r}: that service token is not theirs; act with your own ({TOKEN_ENV} or asked)")
    return found


def _logged(s: Settings, user, route: str, status: int, people: list, practices: list[str]) -> None:
    from phm.core import ledger, ledger_head
    from serving.access import log_path

    try:
        ledger.append(
            log_path(s.home),
            "access",
            full_check=False,
            user=user.name if user else "anonymous",
            role=user.role.value if user else None,
            method="CLI",
            route=route,
            status=status,
            client=getpass.getuser(),
            people=[str(p) for p in people],
            practices=sorted(practices),
        )
    except (ledger_head.LedgerError, OSError) as exc:
        raise fail(f"the access log cannot be written ({type(exc).__name__}), so nothing is done") from exc


@app.command("outcome")
def outcome_cmd(
    user: UserOption,
    person: Annotated[str, typer.Option("--person", help="The person's pseudonymised id (as on the worklist).")],
    outcome: Annotated[
        str,
        typer.Option(
            help="contacted, enrolled, declined, not_appropriate, other_team, moved_or_died, or recorded_in_error "
            "(with --withdraws)."
        ),
    ],
    note: Annotated[str, typer.Option(help="Optional short note (shown only within the practice scope).")] = "",
    withdraws: Annotated[
        Optional[int],
        typer.Option(
            help="With --outcome recorded_in_error: the outcome_id (from `phm worklist hidden`) of the outcome in "
            "force that was recorded by mistake; the one before it is then in force again.",
            min=1,
        ),
    ] = None,
) -> None:
    """Record a contact outcome for a person of your practices; it hides them from the worklist for the period
    the outcomes.hide settings give. An outcome recorded by mistake is withdrawn with --outcome recorded_in_error
    --withdraws OUTCOME_ID."""
    from serving import outcomes
    from serving.queries import QueryError

    s = settings()
    u = _coordinator(s, user, "phm worklist outcome")
    try:
        done = outcomes.record(s, outcomes.snapshot_locator(s), u, person, outcome, note or None, withdraws=withdraws)
    except QueryError as exc:
        _logged(s, u, "phm worklist outcome", exc.status, [], [])
        raise fail(exc.message) from exc
    _logged(s, u, "phm worklist outcome", 201, [done.person_id], [done.practice_code])
    until = done.hidden_until.date().isoformat() if done.hidden_until else "a later outcome is recorded"
    if done.outcome.value == "recorded_in_error":
        now = f"still hidden until {until} by the outcome before it" if done.hidden else "not hidden"
        console.print(f"Withdrew outcome {withdraws} of {done.person_id} ({done.practice_code}); they are {now}.")
        return
    console.print(
        f"Recorded {outcome} for {done.person_id} ({done.practice_code}) as outcome {done.outcome_id}; hidden from "
        f"the worklist until {until}."
    )


@app.command("hidden")
def hidden_cmd(user: UserOption) -> None:
    """People of your practices hidden by an outcome now: what, by whom, when, until when."""
    from serving import outcomes
    from serving.queries import QueryError

    s = settings()
    u = _coordinator(s, user, "phm worklist hidden")
    try:
        rows = outcomes.hidden(s, u)
    except QueryError as exc:
        _logged(s, u, "phm worklist hidden", exc.status, [], [])
        raise fail(exc.message) from exc
    _logged(s, u, "phm worklist hidden", 200, [r["person_id"] for r in rows], u.practices)
    tables.dicts(
        f"{len(rows)} people hidden",
        [
            {
                k: r[k]
                for k in (
                    "outcome_id",
                    "person_id",
                    "practice_code",
                    "outcome_words",
                    "recorded_by",
                    "recorded_at",
                    "hidden_until",
                    "note",
                )
            }
            for r in rows
        ],
        limit=len(rows),  # every one: there is no saved report to point to
    )


@app.command("caseload")
def caseload_cmd(
    user: UserOption,
    team: Annotated[str, typer.Option(help="The team whose caseload this is (replaces its earlier upload).")],
    file: Annotated[Path, typer.Option("--file", exists=True, dir_okay=False, help="CSV with an nhs_number column.")],
) -> None:
    """Upload a team's caseload: the NHS numbers are pseudonymised in memory and only the ids are stored; the
    worklist then marks these people as on the team's caseload."""
    from serving import outcomes
    from serving.queries import QueryError

    s = settings()
    u = _coordinator(s, user, "phm worklist caseload")
    try:
        answer, mine = outcomes.upload_caseload(s, outcomes.snapshot_locator(s), u, team, file.read_bytes())
    except QueryError as exc:
        _logged(s, u, "phm worklist caseload", exc.status, [], [])
        raise fail(f"{file.name}: {exc.message}") from exc
    _logged(s, u, "phm worklist caseload", 200, mine, u.practices)
    console.print(
        f"Caseload of {answer['team']}: {answer['stored']:,} people stored, {answer['in_your_practices']:,} "
        f"of them in your practices; {answer['duplicates']:,} duplicate and {answer['malformed']:,} malformed "
        f"rows" + (f" (rows {', '.join(map(str, answer['malformed_rows'][:20]))})" if answer["malformed"] else "")
    )


@app.command("export-outcomes")
def export_cmd(
    out: Annotated[Path, typer.Option("--out", help="Folder for outcomes.csv and enrolments.csv.")],
) -> None:
    """Every outcome recorded and the enrolment periods derived from them, pseudonymised and without notes or staff
    names, for evaluating the programme."""
    from phm.operational.database import DatabaseError
    from serving import outcomes

    from phm.core import ledger, ledger_head
    from serving.access import log_path

    s = settings()
    if out.exists() and not out.is_dir():
        raise fail(f"{out}: is a file; name a folder for outcomes.csv and enrolments.csv")
    _ready(s)
    try:
        frames = outcomes.export_frames(s)
    except DatabaseError as exc:
        raise fail(str(exc)) from exc
    try:  # nothing is written unless it is recorded
        ledger.append(
            log_path(s.home),
            "export",
            full_check=False,
            user=getpass.getuser(),
            role="evaluation",
            method="CLI",
            route="phm worklist export-outcomes",
            status=0,
            client="",
            people=[],
            practices=[],
        )
    except (ledger_head.LedgerError, OSError) as exc:
        raise fail(f"the access log cannot be written ({type(exc).__name__}), so nothing is exported") from exc
    try:
        paths = outcomes.write_export(frames, out)
    except OSError as exc:
        raise fail(f"{out}: cannot write the export ({exc.strerror or type(exc).__name__})") from exc
    for key, path in paths.items():
        console.print(f"{key}: {path}")
