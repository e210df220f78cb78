"""`phm db`: the operational database (sessions, contact outcomes, caseloads)."""

from __future__ import annotations

import typer

from phm.cli.common import console, fail, settings

app = typer.Typer(help="The operational database: migrate it, see where it is.", no_args_is_help=True)


@app.command("upgrade")
def upgrade_cmd() -> None:
    """Bring the schema to the newest migration (the service also does this when it starts)."""
    from phm.operational.database import DatabaseError, shown_url, upgrade

    s = settings()
    try:
        revision = upgrade(s)
    except DatabaseError as exc:
        raise fail(str(exc)) from exc
    console.print(f"{shown_url(s)}: at migration {revision}")


@app.command("status")
def status_cmd() -> None:
    """Where the database is, the migration it is at, and the newest one shipped."""
    from phm.operational.database import DatabaseError, head, revision, shown_url, unknown_revision

    s = settings()
    try:
        now = revision(s)
        unknown_revision(s, now)
    except DatabaseError as exc:
        raise fail(str(exc)) from exc
    latest = head()
    console.print(
        f"{shown_url(s)}: at migration {now or 'none'}; newest {latest}"
        + ("" if now == latest else " (run `phm db upgrade`)")
    )
