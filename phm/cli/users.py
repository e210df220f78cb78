"""`phm users`: service users, their tokens, roles and practice scopes. Only these commands write the user list
(atomically); removing, disabling a user or replacing their token also ends their signed-in sessions at once."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.markup import escape

from phm.cli.render import people
from phm.cli.common import console, err, fail, settings
from phm.core.settings import Settings

app = typer.Typer(help="Service users: tokens, roles and practice scopes.", no_args_is_help=True)
NameArg = Annotated[str, typer.Argument(help="The user's name (as in `phm users list`).")]


def known_practices(s: Settings) -> set[str] | None:
    from features.series import practice_pcns

    return set(practice_pcns(s.warehouse_path)) if s.warehouse_path.exists() else None


def end_sessions(s: Settings, name: str, reason: str) -> None:
    """End the user's signed-in sessions (the service also refuses them on its own: this makes it immediate)."""
    from phm.operational.database import DatabaseError, upgrade
    from serving.sessions import Sessions

    try:
        upgrade(s)
        ended = Sessions(s).end_user(name, reason)
    except DatabaseError as exc:
        err.print(
            f"[yellow]Warning:[/] {escape(str(exc))}; the service still refuses {escape(name)}'s old sessions, as "
            "it checks the user list on every request."
        )
        return
    if ended:
        console.print(f"Ended {ended} signed-in session(s) of {escape(name)}.")


def _show_token(token: str) -> None:
    console.print("Token (shown once, keep it secret):")
    console.print(token, soft_wrap=True, highlight=False)


@app.command("add")
def add_cmd(
    name: Annotated[str, typer.Argument(help="The person's name (as recorded in the access log).")],
    role: Annotated[
        str,
        typer.Option(help="coordinator, planner, safety_officer, data_scientist or data_feed (a hospital event feed)."),
    ],
    practice: Annotated[
        Optional[list[str]], typer.Option(help="Practice code a coordinator may see (repeatable).")
    ] = None,
    replace: Annotated[bool, typer.Option(help="Replace an existing user of this name (new token).")] = False,
) -> None:
    """Create a user and print their token once (only its hash is stored)."""
    from serving.users import Role, UserError, UsersError, add_user

    s = settings()
    try:
        role_value = Role(role)
    except ValueError as exc:
        raise fail(f"unknown role {role!r}; choose from {', '.join(r.value for r in Role)}") from exc
    try:
        user, token = add_user(s.home, name, role_value, practice or [], known_practices(s), replace=replace)
    except (UserError, UsersError) as exc:
        raise fail(str(exc)) from exc
    scope = f" for practices {', '.join(user.practices)}" if user.practices else ""
    console.print(f"Added {escape(user.name)} as {user.role.value}{scope}.")
    _show_token(token)
    if replace:
        end_sessions(s, name, "token replaced")


@app.command("list")
def list_cmd() -> None:
    """Users, roles, scopes and whether they are disabled (never tokens)."""
    from serving.users import UsersError, load_users

    try:
        people.users(load_users(settings().home))
    except UsersError as exc:
        raise fail(str(exc)) from exc


def _change(action, name: str, reason: str, done: str):
    from serving.users import UserError, UsersError

    s = settings()
    try:
        out = action(s.home, name)
    except (UserError, UsersError) as exc:
        raise fail(str(exc)) from exc
    console.print(done, markup=False)
    end_sessions(s, name, reason)
    return out


@app.command("remove")
def remove_cmd(name: NameArg) -> None:
    """Delete a user: their token and every session of theirs stop working at once."""
    from serving.users import remove_user

    _change(remove_user, name, "user removed", f"Removed {name}.")


@app.command("disable")
def disable_cmd(name: NameArg) -> None:
    """Refuse a user everywhere (kept in the list for the record; `phm users enable` undoes it)."""
    from serving.users import set_disabled

    _change(lambda home, n: set_disabled(home, n, True), name, "user disabled", f"Disabled {name}.")


@app.command("enable")
def enable_cmd(name: NameArg) -> None:
    """Allow a disabled user again (with the same token)."""
    from serving.users import set_disabled

    _change(lambda home, n: set_disabled(home, n, False), name, "user enabled", f"Enabled {name}.")


@app.command("rotate")
def rotate_cmd(name: NameArg) -> None:
    """Give a user a new token (printed once); the old token and their sessions stop working at once."""
    from serving.users import rotate_token

    _, token = _change(rotate_token, name, "token replaced", f"New token for {name}.")
    _show_token(token)
