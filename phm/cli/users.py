"""`phm users`: service users, their tokens, roles and practice scopes."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from phm.cli import render
from phm.cli.common import console, fail, settings
from phm.core.settings import Settings

app = typer.Typer(help="Service users: tokens, roles and practice scopes.", no_args_is_help=True)


def known_practices(s: Settings) -> set[str] | None:
    from features.series import practice_pcns

    return set(practice_pcns(s.warehouse_path)) if s.warehouse_path.exists() else None


@app.command("add")
def add_cmd(
    name: Annotated[str, typer.Argument(help="The person's name (as recorded in the access log).")],
    role: Annotated[str, typer.Option(help="coordinator, planner, safety_officer or data_scientist.")],
    practice: Annotated[Optional[list[str]], typer.Option(help="Practice code a coordinator may see (repeatable).")] = None,
    replace: Annotated[bool, typer.Option(help="Replace an existing user of this name (new token).")] = False,
) -> None:
    """Create a user and print their token once (only its hash is stored)."""
    from serving.users import Role, UserError, add_user

    s = settings()
    try:
        role_value = Role(role)
    except ValueError as exc:
        raise fail(f"unknown role {role!r}; choose from {', '.join(r.value for r in Role)}") from exc
    try:
        user, token = add_user(s.home, name, role_value, practice or [], known_practices(s), replace=replace)
    except UserError as exc:
        raise fail(str(exc)) from exc
    scope = f" for practices {', '.join(user.practices)}" if user.practices else ""
    console.print(f"Added {user.name} as {user.role.value}{scope}. Token (shown once, keep it secret):")
    console.print(token, soft_wrap=True, highlight=False)


@app.command("list")
def list_cmd() -> None:
    """Users, roles and scopes (never tokens)."""
    from serving.users import load_users

    render.users(load_users(settings().home))
