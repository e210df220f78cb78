"""`phm access`: the service's access log — check it has not been altered, and answer "who viewed this person?"
(a subject-access request) from an NHS number that is pseudonymised in memory and never printed or stored."""

from __future__ import annotations

import getpass
import json
import re
from typing import Annotated, Optional

import typer

from phm.cli.render import ledgers, people
from phm.cli.common import console, fail, settings
from phm.core.settings import Settings

app = typer.Typer(help="The access log: verify it, and list who viewed a person.", no_args_is_help=True)


@app.command("verify")
def verify_cmd() -> None:
    """Check the access log's hash chain and its signed head: an edited, removed or truncated entry, or a deleted
    log, is reported (exit code 1)."""
    from phm.core import ledger_check
    from serving.access import log_path

    s = settings()
    path = log_path(s.home)
    found = ledger_check.check(path)
    ledgers.ledger_check("Access log", path, found.entries, found.problems)
    ledgers.ledger_notes(found.notes)
    if found.problems:
        raise typer.Exit(1)


def person_id_for(s: Settings, nhs_number: str) -> str:
    """The pseudonymised person id of an NHS number, with the installation's key (the number is not kept)."""

    from features.sources.nhs_number import is_valid
    from features.sources.pseudonymise import MissingKeyError, Pseudonymiser, installation_key

    number = re.sub(r"[ \-]", "", nhs_number)
    if not (re.fullmatch(r"[0-9]{10}", number) and len(set(number)) > 1 and is_valid(number)):
        raise fail("that is not a valid NHS number (ten digits with a correct check digit); it was not recorded")
    try:
        key = installation_key(s)
    except MissingKeyError as exc:
        raise fail(str(exc)) from exc
    return str(Pseudonymiser(key).person_id(number))


@app.command("who-viewed")
def who_viewed_cmd(
    nhs_number: Annotated[
        Optional[str],
        typer.Option(
            "--nhs-number",
            help="The person's NHS number (asked for without echo when left out, which keeps it out "
            "of the shell's history).",
        ),
    ] = None,
) -> None:
    """Every logged request that returned this person's row, or asked for it and was refused: when, who, which
    role, which request. The number is pseudonymised in memory with the installation's key; the lookup itself is
    recorded in the access log (by the pseudonymised id)."""
    from phm.core import ledger, ledger_head
    from serving.access import log_path

    s = settings()
    if nhs_number is None:
        nhs_number = typer.prompt("NHS number", hide_input=True)
    pid = person_id_for(s, nhs_number)
    path = log_path(s.home)
    rows, entries = [], 0
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:  # streamed: the log may be large; only lines naming the id are parsed
                entries += 1
                if pid not in line:
                    continue
                try:
                    e = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn line holds no complete entry (`phm access verify` reports it)
                if e.get("kind") != "access":
                    continue
                if pid in e.get("people", []):
                    rows.append({**e, "what": "viewed"})
                elif pid in e.get("asked", []):
                    rows.append({**e, "what": f"asked for, refused ({e.get('status')})"})
    except FileNotFoundError as exc:
        raise fail(f"{path} does not exist; run `phm access verify`") from exc
    people.access_views(rows, entries)
    try:
        ledger.append(
            path,
            "lookup",
            full_check=False,
            user=getpass.getuser(),
            role="information governance",
            method="CLI",
            route="phm access who-viewed",
            status=0,
            client="",
            people=[pid],
            practices=[],
        )
    except (ledger_head.LedgerError, OSError) as exc:
        console.print(f"[yellow]Warning:[/] this lookup could not be recorded in the access log ({type(exc).__name__})")
