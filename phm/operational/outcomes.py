"""Contact outcomes and caseloads in the operational database.

A care coordinator records a coded outcome per person (pseudonymised id). Rows are only ever inserted, so two
workers recording at once lose nothing; a person's latest outcome is the one in force. Each outcome hides the
person from the worklist for the period `[outcomes.hide]` sets (days, or "until_changed": until a later outcome),
after which they return if still in a worklist band. An outcome recorded by mistake is withdrawn by recording
`recorded_in_error`: the person's latest standing outcome no longer counts (for hiding and for enrolment periods)
and the one before it, if any, is in force again; the history keeps both rows. A caseload upload replaces a team's list of people (ids
pseudonymised before they get here). Every function takes `now` so tests can move the clock; times are naive UTC.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import SQLAlchemyError

from phm.core.settings import Settings
from phm.operational.database import DatabaseError, engine, shown_url
from phm.operational.tables import caseloads, outcomes


REPEAT = timedelta(minutes=2)  # the same outcome sent again by the same user within this is stored once
_NUMBER_LIKE = re.compile(r"(?<!\d)\d{3}[ -]?\d{3}[ -]?\d{4}(?!\d)")


class Outcome(str, Enum):
    contacted = "contacted"
    enrolled = "enrolled"
    declined = "declined"
    not_appropriate = "not_appropriate"
    other_team = "other_team"
    moved_or_died = "moved_or_died"
    recorded_in_error = "recorded_in_error"  # withdraws the person's latest standing outcome


WORDS = {
    Outcome.contacted: "contacted",
    Outcome.enrolled: "enrolled in case management",
    Outcome.declined: "declined",
    Outcome.not_appropriate: "not appropriate",
    Outcome.other_team: "already under another team",
    Outcome.moved_or_died: "moved away or died",
    Outcome.recorded_in_error: "recorded in error (withdrawn)",
}
HIDING = [o for o in Outcome if o is not Outcome.recorded_in_error]  # the codes that hide a person


@dataclass(frozen=True)
class Recorded:
    """A person's outcome in force."""

    person_id: int
    practice_code: str
    outcome: Outcome
    recorded_by: str
    recorded_at: datetime
    note: str | None
    hidden_until: datetime | None  # None: hidden until a later outcome is recorded
    hidden: bool
    outcome_id: int | None = None  # the record's number (what a withdrawal names)


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)


def _failed(settings: Settings, exc: Exception) -> DatabaseError:
    return DatabaseError(f"the outcome store at {shown_url(settings)} cannot be used ({type(exc).__name__})")


def hide_days(settings: Settings, outcome: Outcome) -> int | None:
    """Days this outcome hides a person (None: until a later outcome)."""
    value = getattr(settings.outcomes.hide, outcome.value)
    return None if value == "until_changed" else int(value)


def record(
    settings: Settings,
    person_id: int,
    practice_code: str,
    outcome: Outcome | str,
    user: str,
    note: str | None = None,
    now: datetime | None = None,
    withdraws: int | None = None,
) -> Recorded:
    """Record an outcome (the caller has checked the person is in `user`'s scope). `recorded_in_error` needs
    `withdraws`, the number of the outcome in force it withdraws: a second click, or a withdrawal of an outcome
    another coordinator has since replaced, changes nothing (ValueError)."""
    outcome = Outcome(outcome)
    if (outcome is Outcome.recorded_in_error) != (withdraws is not None):
        raise ValueError("recorded_in_error, and only it, names the outcome it withdraws (withdraws)")
    note = (note or "").strip() or None
    if note is not None and len(note) > settings.outcomes.note_max:
        raise ValueError(f"the note is longer than {settings.outcomes.note_max} characters")
    if note is not None and _NUMBER_LIKE.search(note):
        raise ValueError("the note looks as if it holds an NHS number; notes must not identify anyone")
    at = now or utcnow()
    try:
        with engine(settings).begin() as conn:
            standing = _standing(_rows(conn, None, [person_id])).get(int(person_id))
            if withdraws is None and _repeat(standing, practice_code, outcome, user, note, at):
                first, first_note = standing["recorded_at"], standing["note"]
                return _in_force(
                    settings, int(person_id), practice_code, outcome.value, user, first, first_note, at, standing["id"]
                )
            if withdraws is not None:
                if standing is None or standing["id"] != int(withdraws):
                    raise ValueError(
                        f"outcome {int(withdraws)} is not the one in force for person {int(person_id)} (already "
                        "withdrawn or replaced): nothing was changed"
                    )
            done = conn.execute(
                insert(outcomes).values(
                    person_id=int(person_id),
                    practice_code=practice_code,
                    outcome=outcome.value,
                    note=note,
                    recorded_by=user,
                    recorded_at=at,
                )
            )
            number = int(done.inserted_primary_key[0])
    except SQLAlchemyError as exc:
        raise _failed(settings, exc) from exc
    if outcome is Outcome.recorded_in_error:  # hidden (or not) by what is in force now
        now_in_force = in_force(settings, person_ids=[person_id], now=at)
        hides = bool(now_in_force) and now_in_force[0].hidden
        until = now_in_force[0].hidden_until if now_in_force else at
        return Recorded(int(person_id), practice_code, outcome, user, at, note, until, hides, number)
    return _in_force(settings, int(person_id), practice_code, outcome.value, user, at, note, at, number)


def _repeat(standing: dict | None, practice: str, outcome: Outcome, user: str, note: str | None, at: datetime) -> bool:
    """Whether this outcome repeats the one in force, by the same user, within `REPEAT` (a form sent twice: a
    double click, a reload): it is then not stored again."""
    return (
        standing is not None
        and (standing["practice_code"], standing["outcome"], standing["recorded_by"], standing["note"])
        == (practice, outcome.value, user, note)
        and timedelta(0) <= at - standing["recorded_at"] <= REPEAT
    )


def _in_force(
    settings: Settings,
    person_id: int,
    practice: str,
    outcome: str,
    by: str,
    at: datetime,
    note: str | None,
    now: datetime,
    number: int | None = None,
) -> Recorded:
    code = Outcome(outcome)
    days = hide_days(settings, code)
    until = None if days is None else at + timedelta(days=days)
    return Recorded(person_id, practice, code, by, at, note, until, until is None or until > now, number)


def in_force(
    settings: Settings,
    practices: Iterable[str] | None = None,
    person_ids: Iterable[int] | None = None,
    now: datetime | None = None,
) -> list[Recorded]:
    """Each person's outcome in force (of these practices and/or people; all when neither is given): the latest
    not withdrawn. Newest first."""
    now = now or utcnow()
    try:
        with engine(settings).connect() as conn:
            standing = _standing(_rows(conn, practices, person_ids))
    except SQLAlchemyError as exc:
        raise _failed(settings, exc) from exc
    return [
        _in_force(
            settings,
            r["person_id"],
            r["practice_code"],
            r["outcome"],
            r["recorded_by"],
            r["recorded_at"],
            r["note"],
            now,
            r["id"],
        )
        for r in sorted(standing.values(), key=lambda r: (r["recorded_at"], r["id"]), reverse=True)
    ]


def _rows(conn, practices: Iterable[str] | None, person_ids: Iterable[int] | None) -> list[dict]:
    """The outcome rows of these practices and/or people, oldest first."""
    query = select(outcomes).order_by(outcomes.c.id)
    if practices is not None:
        query = query.where(outcomes.c.practice_code.in_(sorted(set(practices))))
    if person_ids is not None:
        query = query.where(outcomes.c.person_id.in_(sorted({int(p) for p in person_ids})))
    return [dict(r) for r in conn.execute(query).mappings()]


def _stacks(rows: list[dict]) -> dict[int, list[dict]]:
    """Per person, the outcomes still standing, oldest first: each `recorded_in_error` withdraws the latest one
    standing before it (and is not itself an outcome)."""
    stacks: dict[int, list[dict]] = {}
    for r in sorted(rows, key=lambda r: r["id"]):
        stack = stacks.setdefault(int(r["person_id"]), [])
        if r["outcome"] == Outcome.recorded_in_error.value:
            if stack:
                stack.pop()
        else:
            stack.append(r)
    return stacks


def _standing(rows: list[dict]) -> dict[int, dict]:
    """Each person's latest outcome not withdrawn (people with none standing are left out)."""
    return {pid: stack[-1] for pid, stack in _stacks(rows).items() if stack}


def withdrawn_ids(rows: list[dict]) -> set[int]:
    """The ids of the rows a `recorded_in_error` withdrew, and of those withdrawals themselves."""
    standing = {r["id"] for stack in _stacks(rows).values() for r in stack}
    return {r["id"] for r in rows if r["id"] not in standing}


def hidden(settings: Settings, practices: Iterable[str], now: datetime | None = None) -> list[Recorded]:
    """The people of these practices whose latest outcome hides them now (newest first)."""
    return [r for r in in_force(settings, practices=practices, now=now) if r.hidden]


def history(settings: Settings) -> list[dict]:
    """Every outcome recorded, oldest first (for the evaluation export)."""
    try:
        with engine(settings).connect() as conn:
            rows = conn.execute(select(outcomes).order_by(outcomes.c.id)).mappings().all()
    except SQLAlchemyError as exc:
        raise _failed(settings, exc) from exc
    return [dict(r) for r in rows]


def enrolments(rows: list[dict]) -> list[dict]:
    """Enrolment periods from the outcome history: each `enrolled` outcome starts one (unless the person is already
    enrolled) and the person's next other outcome ends it (`ended_at` None: still enrolled). Outcomes withdrawn as
    recorded in error neither start nor end one."""
    open_: dict[int, dict] = {}
    out: list[dict] = []
    withdrawn = withdrawn_ids(rows)
    for r in sorted((r for r in rows if r["id"] not in withdrawn), key=lambda r: r["id"]):
        pid = int(r["person_id"])
        if r["outcome"] == Outcome.enrolled.value:
            if pid not in open_:
                open_[pid] = {
                    "person_id": pid,
                    "practice_code": r["practice_code"],
                    "enrolled_at": r["recorded_at"],
                    "ended_at": None,
                    "ended_by": None,
                }
                out.append(open_[pid])
        elif pid in open_:
            period = open_.pop(pid)
            period["ended_at"], period["ended_by"] = r["recorded_at"], r["outcome"]
    return out


# ---- caseloads -------------------------------------------------------------------------------------------
def set_caseload(
    settings: Settings, team: str, person_ids: Iterable[int], user: str, now: datetime | None = None
) -> int:
    """Replace `team`'s caseload with these people (pseudonymised ids); how many are on it now."""
    team = team.strip()
    if not team or len(team) > 80:
        raise ValueError("a team name is 1 to 80 characters")
    if _NUMBER_LIKE.search(team):  # it is stored as it is and shown to every practice's coordinators
        raise ValueError("the team name looks as if it holds an NHS number; team names must not identify anyone")
    ids = sorted({int(p) for p in person_ids})
    at = now or utcnow()
    try:
        with engine(settings).begin() as conn:
            conn.execute(delete(caseloads).where(caseloads.c.team == team))
            if ids:
                conn.execute(
                    insert(caseloads),
                    [{"team": team, "person_id": p, "uploaded_by": user, "uploaded_at": at} for p in ids],
                )
    except SQLAlchemyError as exc:
        raise _failed(settings, exc) from exc
    return len(ids)


def teams_of(settings: Settings, person_ids: Iterable[int]) -> dict[int, list[str]]:
    """The teams whose caseload holds each of these people (only people on one appear)."""
    ids = sorted({int(p) for p in person_ids})
    out: dict[int, list[str]] = {}
    if not ids:
        return out
    try:
        with engine(settings).connect() as conn:
            for start in range(0, len(ids), 5000):
                part = ids[start : start + 5000]
                for pid, team in conn.execute(
                    select(caseloads.c.person_id, caseloads.c.team)
                    .where(caseloads.c.person_id.in_(part))
                    .order_by(caseloads.c.team)
                ):
                    out.setdefault(int(pid), []).append(team)
    except SQLAlchemyError as exc:
        raise _failed(settings, exc) from exc
    return out
