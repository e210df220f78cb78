"""`phm worklist reidentify`: re-identify the care coordinator's worklist for direct care with the practice's
registered list (read in memory, never stored; the look-up is recorded in the access log). Registered on the
`phm worklist` group (`phm.cli.worklist_outcomes`)."""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from phm.cli.render import people
from phm.cli.common import console, fail, settings

TOKEN_ENV = "PHM_TOKEN"


def reidentify_cmd(
    practice_list: Annotated[
        Path,
        typer.Option(
            "--practice-list",
            help="The practice's registered list (CSV with NHS number, name and date of birth columns).",
        ),
    ],
    practice: Annotated[Optional[list[str]], typer.Option(help="Only these of your practices.")] = None,
    min_band: Annotated[str, typer.Option(help="Lowest band: very high, high, raised or routine.")] = "raised",
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV (formula-safe) instead of a table.")] = False,
) -> None:
    """Your worklist's people found in your practice list, with NHS number and name, printed (never written to a
    file by PHM). Sign in with your service token (asked for without echo, or from PHM_TOKEN). People of other
    practices reveal nothing; malformed numbers are listed by row. Recorded in the access log with the purpose
    "direct care" and the pseudonymised ids shown (a refusal too: who, and the status)."""
    from phm.core import ledger, ledger_head
    from serving.access import log_path
    from serving.queries import QueryError
    from serving.reidentify import as_csv as to_csv, log_fields, reidentify
    from serving.schemas import Band
    from serving.state import ServiceState, UsersUnavailable
    from serving.users import Role, authenticate

    if min_band not in {b.value for b in Band}:
        raise fail(f"--min-band must be one of {[b.value for b in Band]}")
    s = settings()
    try:
        data = practice_list.read_bytes()
    except OSError as exc:
        raise fail(f"{practice_list}: cannot be read ({type(exc).__name__})") from exc
    token = os.environ.get(TOKEN_ENV) or typer.prompt("Service token", hide_input=True)
    with console.status("Loading today's worklist"):
        st = ServiceState(s, background=False)

    def log(user, status: int, people: list, practices: list[str], **extra) -> None:
        ledger.append(
            log_path(s.home),
            "access",
            full_check=False,
            user=user.name if user else "anonymous",
            role=user.role.value if user else None,
            method="CLI",
            route="phm worklist reidentify",
            status=status,
            client=getpass.getuser(),
            people=people,
            practices=practices,
            **extra,
        )

    def refused(user, status: int, message: str):
        """The refusal, recorded in the access log as the service records one (best effort: it shows nothing)."""
        try:
            log(user, status, [], [])
        except (ledger_head.LedgerError, OSError, ValueError):
            pass
        return fail(message)

    try:
        u = authenticate(st.users.by_digest, token.strip())
    except UsersUnavailable as exc:
        raise fail("the user list cannot be read; tell your administrator") from exc
    if u is None or u.role != Role.coordinator:
        raise refused(
            u,
            401 if u is None else 403,
            "re-identification is for care coordinators: that token is not a coordinator's",
        )
    try:
        result = reidentify(st, u, data, Band(min_band), practice)
    except QueryError as exc:
        raise refused(
            u, exc.status, f"{practice_list}: {exc.message}" if exc.status in (413, 422) else exc.message
        ) from exc
    try:  # nothing is shown unless it is recorded
        log(u, 0, [p["person_id"] for p in result.people], result.summary.practices, **log_fields(result))
    except (ledger_head.LedgerError, OSError, ValueError) as exc:
        raise fail(f"the access log cannot be written ({type(exc).__name__}), so nothing is shown") from exc
    if as_csv:
        typer.echo(to_csv(result), nl=False)
    else:
        people.reidentified(result)
