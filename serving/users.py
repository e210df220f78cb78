"""Service users: a bearer token per user (only its SHA-256 is stored), a role, and for care
coordinators the practice codes they may see.

Roles: `coordinator` (person-level worklists and scores for the listed practices only),
`planner` (aggregates under the disclosure-control policy, forecasts, scenarios), `safety_officer`
(bias reports and sign-off decisions), `data_scientist` (models, reports, forecasts, aggregates and
scoring of feature records, but no person-level reads), `data_feed` (a hospital's event feed: posts admission,
discharge and A&E events and reads nothing).

The list lives in `$PHM_HOME/security/users.json` (owner-only). Only the command line writes it, atomically
(a new file renamed over the old, under a lock), so a reader never sees half a list. A list that cannot be
read or checked is an error (`UsersError`): the service then refuses authenticated requests rather than
carry on with an older list.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import secrets
import unicodedata
from contextlib import contextmanager
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class Role(str, Enum):
    coordinator = "coordinator"
    planner = "planner"
    safety_officer = "safety_officer"
    data_scientist = "data_scientist"
    data_feed = "data_feed"  # a hospital feed: may only post events (serving.api_events); reads nothing


PERSON_LEVEL = {Role.coordinator}


class User(BaseModel):
    """A service user as stored in users.json (unknown keys are refused: the file is read as written)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=80)
    role: Role
    practices: list[str] = Field(default_factory=list)
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    created: str
    disabled: bool = False
    changed: str | None = None  # when the token was last replaced or the user disabled/enabled

    @field_validator("practices")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return sorted({p.strip().upper() for p in value if p.strip()})

    @property
    def sees_people(self) -> bool:
        return self.role in PERSON_LEVEL


class UserError(ValueError):
    """A user cannot be added or changed (duplicate name, unknown user, coordinator without practices, ...)."""


class UsersError(RuntimeError):
    """The user list cannot be read or is not valid (the service fails closed until it is)."""


def users_path(home: Path) -> Path:
    return home / "security" / "users.json"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def load_users(home: Path) -> list[User]:
    """Every user (disabled ones too); [] when no list exists yet. Raises `UsersError` for a list that cannot be
    read, is not JSON, has an invalid entry or a duplicate name or token."""
    path = users_path(home)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise UsersError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from exc
    try:
        found = [User.model_validate(u) for u in json.loads(raw)]
    except json.JSONDecodeError as exc:
        raise UsersError(f"{path}: not valid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})") from exc
    except (ValidationError, TypeError) as exc:
        raise UsersError(f"{path}: an entry is not a valid user ({str(exc).splitlines()[0][:200]})") from exc
    names = [u.name for u in found]
    if len(set(names)) != len(names) or len({u.token_sha256 for u in found}) != len(found):
        raise UsersError(f"{path}: two users share a name or a token")
    return found


@contextmanager
def _editing(home: Path):
    """Read-modify-write of the list under an exclusive lock; the new list replaces the old atomically. A list that
    cannot be written (a full disk, a read-only folder) is a `UsersError` and is left as it was."""
    path = users_path(home)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fh = os.fdopen(os.open(path.with_suffix(".lock"), os.O_CREAT | os.O_WRONLY, 0o600), "w")
    except OSError as exc:
        raise _unwritable(path, exc) from exc
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            users = load_users(home)
            box = {"users": users}
            yield box
            _write(path, box["users"])
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _unwritable(path: Path, exc: OSError) -> UsersError:
    return UsersError(f"{path}: cannot be written ({exc.strerror or type(exc).__name__}); the list is unchanged")


def _write(path: Path, users: list[User]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps([u.model_dump(mode="json") for u in users], indent=1))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _unwritable(path, exc) from exc
        raise
    dirfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


def _new_token() -> str:
    return "phm_" + secrets.token_urlsafe(32)


def add_user(
    home: Path,
    name: str,
    role: Role,
    practices: list[str] | None = None,
    known_practices: set[str] | None = None,
    replace: bool = False,
) -> tuple[User, str]:
    """Create a user and return it with its token (shown once; only the hash is kept). With
    `replace`, an existing user of that name is replaced (a new token; the old one stops working)."""
    practices = practices or []
    if role == Role.coordinator and not practices:
        raise UserError("a care coordinator needs at least one --practice code")
    if role != Role.coordinator and practices:
        raise UserError(f"only care coordinators are scoped to practices, not {role.value}")
    unknown = sorted({p.upper() for p in practices} - known_practices) if known_practices is not None else []
    if unknown:
        raise UserError(f"unknown practice code(s) {unknown}")
    _check_name(name)
    token = _new_token()
    with _editing(home) as box:
        users = box["users"]
        if replace:
            users = [u for u in users if u.name != name]
        if any(u.name == name for u in users):
            raise UserError(f"a user named {name!r} already exists (use `phm users rotate` for a new token)")
        like = next((u.name for u in users if _plain(u.name) == _plain(name)), None)
        if like is not None:
            raise UserError(
                f"a user named {like!r} already exists; {name!r} differs only in case, spacing or look, and the "
                "access log names people by these names"
            )
        user = User(name=name, role=role, practices=practices, token_sha256=digest(token), created=_now())
        box["users"] = [*users, user]
    return user, token


def _plain(name: str) -> str:
    """A name as read on a screen: compatibility forms folded, case and runs of spaces ignored."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


LOOKALIKE_SCRIPTS = {"LATIN", "CYRILLIC", "GREEK"}  # scripts with letters drawn alike (a, а, α; o, о, ο)


def _check_name(name: str) -> None:
    """A new user's name is shown as typed in the access log, `phm access who-viewed` and sign-offs: no spaces
    around it and no control or invisible characters (line breaks, terminal escapes, direction overrides)."""
    if not 1 <= len(name) <= 80:
        raise UserError("a user's name must be 1 to 80 characters")
    if name != name.strip() or any(unicodedata.category(c).startswith("C") for c in name):
        raise UserError(
            f"{name!r}: a user's name cannot start or end with a space, or hold control or invisible characters"
        )
    alike = {unicodedata.name(c, "").split(" ")[0] for c in name if c.isalpha()} & LOOKALIKE_SCRIPTS
    if len(alike) > 1:  # "Demo Coordinаtor" with a Cyrillic а reads as the Latin name
        raise UserError(
            f"{name!r} mixes {' and '.join(sorted(alike)).title()} letters, which look alike: write it in one script"
        )


def _change(home: Path, name: str, change) -> User:
    with _editing(home) as box:
        found = next((u for u in box["users"] if u.name == name), None)
        if found is None:
            raise UserError(f"there is no user named {name!r} (see `phm users list`)")
        new = change(found)
        box["users"] = [u for u in box["users"] if u.name != name] + ([new] if new is not None else [])
    return found if new is None else new


def remove_user(home: Path, name: str) -> User:
    """Delete a user (their token stops working at once)."""
    return _change(home, name, lambda u: None)


def set_disabled(home: Path, name: str, disabled: bool) -> User:
    """Disable a user (kept in the list, refused everywhere) or enable them again."""
    return _change(home, name, lambda u: u.model_copy(update={"disabled": disabled, "changed": _now()}))


def rotate_token(home: Path, name: str) -> tuple[User, str]:
    """A new token for a user; the old one stops working at once."""
    token = _new_token()
    user = _change(home, name, lambda u: u.model_copy(update={"token_sha256": digest(token), "changed": _now()}))
    return user, token


def authenticate(users: list[User] | dict[str, User], token: str | None) -> User | None:
    """The enabled user holding `token` (a list, or a dict from token digest to user)."""
    if not token or len(token) > 200:
        return None
    found = digest(token)
    if isinstance(users, dict):
        user = users.get(found)
        return (
            user if user is not None and not user.disabled and hmac.compare_digest(user.token_sha256, found) else None
        )
    for u in users:
        if hmac.compare_digest(u.token_sha256, found) and not u.disabled:
            return u
    return None
