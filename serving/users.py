"""Service users: a bearer token per user (only its SHA-256 is stored), a role, and for care
coordinators the practice codes they may see.

Roles: `coordinator` (person-level worklists and scores for the listed practices only),
`planner` (aggregates with counts under 5 suppressed, forecasts, scenarios), `safety_officer`
(bias reports and sign-off decisions), `data_scientist` (models, reports, forecasts, aggregates and
scoring of feature records, but no person-level reads).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Role(str, Enum):
    coordinator = "coordinator"
    planner = "planner"
    safety_officer = "safety_officer"
    data_scientist = "data_scientist"


PERSON_LEVEL = {Role.coordinator}


class User(BaseModel):
    """A service user as stored in users.json (unknown keys are refused: the file is read as written)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=80)
    role: Role
    practices: list[str] = Field(default_factory=list)
    token_sha256: str
    created: str

    @field_validator("practices")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return sorted({p.strip().upper() for p in value if p.strip()})

    @property
    def sees_people(self) -> bool:
        return self.role in PERSON_LEVEL


class UserError(ValueError):
    """A user cannot be added (duplicate name, coordinator without practices, ...)."""


def users_path(home: Path) -> Path:
    return home / "security" / "users.json"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def load_users(home: Path) -> list[User]:
    path = users_path(home)
    if not path.exists():
        return []
    return [User.model_validate(u) for u in json.loads(path.read_text())]


def add_user(home: Path, name: str, role: Role, practices: list[str] | None = None,
             known_practices: set[str] | None = None, replace: bool = False) -> tuple[User, str]:
    """Create a user and return it with its token (shown once; only the hash is kept). With
    `replace`, an existing user of that name is replaced (a new token; the old one stops working)."""
    practices = practices or []
    users = load_users(home)
    if replace:
        users = [u for u in users if u.name != name]
    if any(u.name == name for u in users):
        raise UserError(f"a user named {name!r} already exists (use --replace to issue a new token)")
    if role == Role.coordinator and not practices:
        raise UserError("a care coordinator needs at least one --practice code")
    if role != Role.coordinator and practices:
        raise UserError(f"only care coordinators are scoped to practices, not {role.value}")
    unknown = sorted({p.upper() for p in practices} - known_practices) if known_practices is not None else []
    if unknown:
        raise UserError(f"unknown practice code(s) {unknown}")
    token = "phm_" + secrets.token_urlsafe(32)
    user = User(name=name, role=role, practices=practices, token_sha256=_digest(token),
                created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    path = users_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([u.model_dump(mode="json") for u in [*users, user]], indent=1))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return user, token


def authenticate(users: list[User], token: str | None) -> User | None:
    if not token:
        return None
    digest = _digest(token)
    for u in users:
        if hmac.compare_digest(u.token_sha256, digest):
            return u
    return None
