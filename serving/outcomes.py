"""Contact outcomes, the hidden view, caseload uploads and the evaluation export, as the API, the pages and the
command line use them: with the coordinator's practice scope checked against today's snapshot. A caseload's NHS
numbers are pseudonymised in memory with the ICS key as they arrive; only pseudonymised ids are stored, and no
number is ever echoed back, logged or written (bad rows are named by row number only)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import pandas as pd

from features.sources.nhs_number import is_valid, normalise
from features.sources.pseudonymise import MissingKeyError, Pseudonymiser, installation_key
from phm.core.settings import Settings
from phm.operational import outcomes
from phm.operational.database import DatabaseError
from phm.operational.outcomes import WORDS, Outcome, Recorded
from serving.queries import QueryError, snapshot, safe_cell
from serving.state import ServiceState
from serving.batch.snapshot_files import SnapshotAltered
from serving.batch.store import current
from serving.users import Role, User

MAX_CASELOAD_ROWS = 100_000
NUMBER_COLUMNS = ("nhs_number", "nhs number", "nhsnumber", "nhs_no")


Locate = Callable[[int], "str | None"]  # person id -> their practice in today's snapshot (None: not in it)


def service_locator(st: ServiceState) -> Locate:
    """Practices of the service's loaded snapshot (409 when there is none)."""
    snapshot(st)
    b = st.bundle

    def locate(pid: int) -> str | None:
        row = b.position.get(pid)
        return str(b.columns["practice_code"][row]) if row is not None else None

    return locate


def snapshot_locator(settings: Settings) -> Locate:
    """Practices of the current snapshot on disk (for the command line)."""
    try:
        found = current(settings)
    except SnapshotAltered as exc:  # the service pauses the worklist; the command line says so, not a traceback
        raise QueryError(409, f"the worklist is paused: {exc}") from exc
    if found is None:
        raise QueryError(409, "no daily scores yet: run `phm score daily`")
    where = dict(zip(found[1].person_id.tolist(), found[1].practice_code.tolist()))
    return lambda pid: where.get(pid)


def practice_of(locate: Locate, u: User, person_id: str | int) -> str:
    """The practice of a person in today's snapshot, if it is one of the coordinator's; else 403 (the same answer
    whether the person is unknown or outside the scope, so the refusal reveals nothing; 422, not echoing it, for
    such an id that is a valid NHS number)."""
    nhs_like = is_valid(normalise(str(person_id)))  # never echoed: it may be a real NHS number
    try:
        pid = int(person_id)
    except (TypeError, ValueError):
        pid = None
    practice = None if pid is None else locate(pid)
    if practice is None or practice not in u.practices:
        if nhs_like:
            raise QueryError(422, "that is an NHS number: record an outcome by the pseudonymised id on the worklist")
        if pid is None:
            raise QueryError(422, "person_id must be a pseudonymised id (digits)")
        raise QueryError(403, f"person {pid} is not in your practices, so you cannot record an outcome for them")
    return practice


def record(
    settings: Settings,
    locate: Locate,
    u: User,
    person_id: str | int,
    outcome: str,
    note: str | None,
    now: datetime | None = None,
    withdraws: int | None = None,
) -> Recorded:
    """Record an outcome for a person of the coordinator's practices (`recorded_in_error` with `withdraws`, the
    number of the outcome in force it withdraws)."""
    try:
        code = Outcome(outcome)
    except ValueError:
        raise QueryError(422, f"unknown outcome {outcome!r}; one of {[o.value for o in Outcome]}") from None
    if u.role != Role.coordinator:
        raise QueryError(403, "only care coordinators record outcomes, for people of their practices")
    practice = practice_of(locate, u, person_id)
    try:
        return outcomes.record(settings, int(person_id), practice, code, u.name, note, now, withdraws)
    except ValueError as exc:
        raise QueryError(422, str(exc)) from exc
    except DatabaseError as exc:
        raise QueryError(503, "the outcome store cannot be reached; nothing was recorded, try again shortly") from exc


def hidden(settings: Settings, u: User, now: datetime | None = None) -> list[dict]:
    """The coordinator's people hidden by an outcome now: who recorded what, when, until when, and the note."""
    try:
        found = outcomes.hidden(settings, u.practices, now)
    except DatabaseError as exc:
        raise QueryError(503, "the outcome store cannot be reached; try again shortly") from exc
    return [shown(r) for r in found]


def shown(r: Recorded) -> dict:
    out = asdict(r)
    out.update(
        person_id=str(r.person_id),
        outcome=r.outcome.value,
        outcome_words=WORDS[r.outcome],
        recorded_at=r.recorded_at.isoformat(timespec="seconds"),
        hidden_until=r.hidden_until.date().isoformat() if r.hidden_until else None,
    )
    return out


# ---- caseloads -------------------------------------------------------------------------------------------
def pseudonymiser(settings: Settings) -> Pseudonymiser:
    """The ICS pseudonymiser (the demo key only for a synthetic warehouse, as the loader decides)."""
    try:
        return Pseudonymiser(installation_key(settings))
    except MissingKeyError as exc:
        raise QueryError(409, str(exc)) from exc


def read_numbers(body: bytes, name: str = "the caseload file") -> tuple[list[str], list[int], int]:
    """(valid numbers, row numbers of malformed ones, duplicates) from a CSV with an `nhs_number` column. Errors
    name the file, row and column, never a value. A file with no valid number is refused: uploading it would
    empty the team's caseload (a wrong column or numbers mangled by a spreadsheet, not a wish to clear it)."""
    if not body.strip():
        raise QueryError(422, f"{name} is empty")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise QueryError(422, f"{name} is not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text))
    good: list[str] = []
    bad: list[int] = []
    seen: set[str] = set()
    duplicates = row_number = 0  # the row last read (the header is row 1)
    try:
        header = [h.strip().lower() for h in next(reader, [])]
        row_number = 1
        column = next((i for i, h in enumerate(header) if h in NUMBER_COLUMNS), None)
        if column is None:
            raise QueryError(422, f"{name} has no nhs_number column (its header names {len(header)} column(s))")
        for row_number, row in enumerate(reader, start=2):
            if row_number - 1 > MAX_CASELOAD_ROWS:
                raise QueryError(413, f"{name} has more than {MAX_CASELOAD_ROWS:,} rows")
            if not row or not any(c.strip() for c in row):
                continue
            number = normalise(row[column]) if column < len(row) else ""
            if not is_valid(number):
                bad.append(row_number)
            elif number in seen:
                duplicates += 1
            else:
                seen.add(number)
                good.append(number)
    except csv.Error:
        raise QueryError(
            422,
            f"{name}: row {row_number + 1} (header = row 1) is not valid CSV (an unclosed quote or an over-long cell)",
        ) from None
    if not good:
        raise QueryError(
            422,
            f"{name} has no valid NHS number ({len(bad)} malformed row(s)), so the team's caseload is left as it was",
        )
    return good, bad, duplicates


def upload_caseload(
    settings: Settings, locate: Locate, u: User, team: str, body: bytes, now: datetime | None = None
) -> tuple[dict, list[int]]:
    """Replace a team's caseload from a CSV of NHS numbers; (the answer, the coordinator's people on it for the
    access log). The answer counts the people found in the coordinator's practices only."""
    numbers, bad, duplicates = read_numbers(body)
    maker = pseudonymiser(settings)
    ids = [maker.person_id(n) for n in numbers]
    del numbers
    try:
        stored = outcomes.set_caseload(settings, team, ids, u.name, now)
    except ValueError as exc:
        raise QueryError(422, str(exc)) from exc
    except DatabaseError as exc:
        raise QueryError(503, "the caseload store cannot be reached; nothing was changed, try again shortly") from exc
    mine = [p for p in ids if locate(p) in u.practices]
    return {
        "team": team.strip(),
        "stored": stored,
        "in_your_practices": len(mine),
        "malformed": len(bad),
        "malformed_rows": bad[:1000],
        "duplicates": duplicates,
    }, mine


# ---- evaluation export -------------------------------------------------------------------------------------
def export(settings: Settings, out: Path) -> dict[str, Path]:
    """outcomes.csv (every outcome recorded; `withdrawn` "yes" on one withdrawn as recorded in error, and on the
    withdrawal) and enrolments.csv (periods in case management, withdrawn outcomes left out), pseudonymised and
    without notes or staff names, for evaluating the programme."""
    return write_export(export_frames(settings), out)


def export_frames(settings: Settings) -> dict[str, pd.DataFrame]:
    """The export's tables ("outcomes", "enrolments"), read from the outcome store (see `export`)."""
    rows = outcomes.history(settings)
    withdrawn = outcomes.withdrawn_ids(rows)
    history = pd.DataFrame(
        [
            {
                "person_id": str(r["person_id"]),
                "practice_code": r["practice_code"],
                "outcome": r["outcome"],
                "recorded_at": r["recorded_at"].isoformat(timespec="seconds"),
                "withdrawn": "yes" if r["id"] in withdrawn else "",
            }
            for r in rows
        ],
        columns=["person_id", "practice_code", "outcome", "recorded_at", "withdrawn"],
    )
    periods = pd.DataFrame(
        [
            {
                "person_id": str(p["person_id"]),
                "practice_code": p["practice_code"],
                "enrolled_at": p["enrolled_at"].isoformat(timespec="seconds"),
                "ended_at": p["ended_at"].isoformat(timespec="seconds") if p["ended_at"] else "",
                "ended_by": p["ended_by"] or "",
            }
            for p in outcomes.enrolments(rows)
        ],
        columns=["person_id", "practice_code", "enrolled_at", "ended_at", "ended_by"],
    )
    return {"outcomes": history, "enrolments": periods}


def write_export(frames: dict[str, pd.DataFrame], out: Path) -> dict[str, Path]:
    """Write each table to `out`/NAME.csv whole or not at all (beside it, then renamed over it); an OSError names
    the path that could not be written."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {key: out / f"{key}.csv" for key in frames}
    for key, frame in frames.items():
        part = paths[key].with_name(f".{key}.csv.part")
        try:
            frame.map(safe_cell).to_csv(part, index=False)
            part.replace(paths[key])
        except OSError:
            part.unlink(missing_ok=True)
            raise
    return paths
