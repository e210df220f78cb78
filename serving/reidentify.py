"""Re-identification for direct care: a care coordinator's practice list (NHS number, name, date of birth), read
and pseudonymised in memory, joined to today's worklist in the coordinator's practices (without the people a
recorded outcome hides from it, as on the worklist). Rows come back with the
number and name the practice already holds. People of other practices are treated exactly like numbers unknown
to the ICS (nothing about them is answered, not even a count); malformed numbers are counted and listed by row.
Nothing here writes anything; the caller records the access-log entry (purpose "direct care", the ids returned)."""

from __future__ import annotations

import gc
import io
import json
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel
from pydantic_core import to_json

from features.sources.practice_list import Entry, PracticeList, PracticeListError, parse, pseudonymise
from features.sources.pseudonymise import MissingKeyError, installation_key
from phm.core.settings import Settings
from phm.operational import outcomes
from phm.operational.database import DatabaseError
from serving.holdout_view import HoldoutUnknown
from serving.batch.ranking import BAND_ORDER
from serving.batch.store import worklist_version
from serving.queries import QueryError, practices_asked, safe_cell, snapshot
from serving.schemas import Band
from serving.state import ServiceState
from serving.users import User

PURPOSE = "direct care"
MAX_ROWS_LISTED = 1_000  # malformed row numbers listed (all are counted)
COLUMNS = ("person_id", "risk", "band", "rank", "reasons", "practice_code")


class Person(BaseModel):
    """A person on the worklist, with what the practice list says about them."""

    row: int  # data row of the practice list (1 = the first after the header)
    nhs_number: str
    name: str
    date_of_birth: str
    details: dict[str, str]  # the practice list's other columns
    person_id: str
    practice_code: str
    risk: float
    band: Band
    rank: int
    reasons: list[str]


class Summary(BaseModel):
    """What a re-identification found, without the people."""

    snapshot_date: str
    model_version: str
    purpose: str = PURPOSE
    practices: list[str]
    min_band: Band
    rows_read: int
    malformed: int
    malformed_rows: list[int]
    matched: int
    not_on_worklist: int  # well-formed numbers not on the worklist of these practices (whatever the reason)
    extra_columns: list[str]


class Reidentified(Summary):
    """The answer (the API's response schema)."""

    people: list[Person]


@dataclass
class Answer:
    """A re-identification: the summary and the people as plain `Person`-shaped dicts, highest risk first (built
    from values already checked and typed, so a large answer is not validated a second time)."""

    summary: Summary
    people: list[dict]

    def to_json(self) -> bytes:
        return to_json({**self.summary.model_dump(mode="json"), "people": self.people})


def lookup_tables(scores: pd.DataFrame) -> tuple[dict[int, int], dict[str, np.ndarray]]:
    """person id -> row, and plain column arrays: what the service holds for a snapshot (`Bundle.position`,
    `Bundle.columns`)."""
    position = dict(zip(scores.person_id.tolist(), range(len(scores))))
    columns = {c: scores[c].to_numpy(dtype=object if scores[c].dtype.kind not in "iuf" else None) for c in COLUMNS}
    return position, columns


def match(
    entries: list[Entry], position: dict[int, int], columns: dict[str, np.ndarray], practices: set[str], min_band: Band
) -> tuple[list[Entry], np.ndarray]:
    """The entries on the worklist of `practices` at `min_band` or above and their snapshot rows, highest risk
    first. Every other entry is dropped the same way, whoever it is."""
    found = [(e, position.get(e.person_id)) for e in entries]
    found = [(e, r) for e, r in found if r is not None]
    if not found:
        return [], np.empty(0, np.int64)
    rows = np.fromiter((r for _, r in found), np.int64, len(found))
    bands = [b for b, order in BAND_ORDER.items() if order >= BAND_ORDER[min_band.value]]
    keep = np.isin(columns["practice_code"][rows], list(practices)) & np.isin(columns["band"][rows], bands)
    kept = np.flatnonzero(keep)
    kept = kept[np.argsort(columns["rank"][rows[kept]], kind="stable")]
    return [found[i][0] for i in kept], rows[kept]


_KEYS: dict[tuple[str, float], bytes] = {}


def key_for(settings: Settings) -> bytes:
    """The installation's key (read once per version of the warehouse; held in memory only)."""
    path = settings.warehouse_path
    stamp = (str(path), path.stat().st_mtime if path.exists() else 0.0)
    if stamp not in _KEYS:
        try:
            key = installation_key(settings)
        except MissingKeyError as exc:
            raise QueryError(409, f"re-identification is not available: {exc}") from None
        _KEYS.clear()
        _KEYS[stamp] = key
    return _KEYS[stamp]


def reidentify(
    st: ServiceState, u: User, data: bytes, min_band: Band = Band.raised, practice: list[str] | None = None
) -> Answer:
    """The coordinator's worklist people found in the uploaded practice list (see the module docstring)."""
    meta, _ = snapshot(st)
    asked = practices_asked(st, practice, None)
    wanted = list(u.practices) if asked is None else asked
    outside = sorted(set(wanted) - set(u.practices))
    if outside:
        raise QueryError(403, f"practice(s) {outside} are outside your scope")
    try:  # as on the worklist, people hidden by a recorded outcome are not on it
        hidden = {r.person_id for r in outcomes.in_force(st.settings, practices=wanted) if r.hidden}
    except DatabaseError as exc:
        raise QueryError(
            503,
            "the outcome store cannot be reached, so the worklist cannot leave out people already "
            "dealt with; try again shortly",
        ) from exc
    try:  # nor are the people held out for the programme's evaluation (their scores are never shown)
        hidden |= st.held_out.ids()
    except HoldoutUnknown as exc:
        raise QueryError(503, str(exc)) from None
    b = st.bundle
    return answer(meta, b.position, b.columns, key_for(st.settings), wanted, data, min_band, hidden)


@contextmanager
def _no_collection():
    """No cyclic garbage collection while tens of thousands of small acyclic objects are made (a collection
    would walk the service's whole snapshot each time; that halved the cost). Reference counting still frees."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def answer(
    meta: dict,
    position: dict[int, int],
    columns: dict[str, np.ndarray],
    key: bytes,
    practices: list[str],
    data: bytes,
    min_band: Band,
    hidden: set[int] = frozenset(),
) -> Answer:
    """Read and pseudonymise the list in memory and join it to the snapshot (its lookup tables) for `practices`,
    leaving out `hidden` people (hidden from the worklist by a recorded outcome)."""
    with _no_collection():
        return _answer(meta, position, columns, key, practices, data, min_band, hidden)


def _answer(
    meta: dict,
    position: dict[int, int],
    columns: dict[str, np.ndarray],
    key: bytes,
    practices: list[str],
    data: bytes,
    min_band: Band,
    hidden: set[int],
) -> Answer:
    try:
        found: PracticeList = parse(data)
    except PracticeListError as exc:
        raise QueryError(exc.status, str(exc)) from None
    pseudonymise(found, key)
    entries = [e for e in found.entries if e.person_id not in hidden] if hidden else found.entries
    hits, rows = match(entries, position, columns, set(practices), min_band)
    values = zip(
        hits,
        columns["person_id"][rows].tolist(),
        columns["practice_code"][rows].tolist(),
        columns["risk"][rows].tolist(),
        columns["band"][rows].tolist(),
        columns["rank"][rows].tolist(),
        columns["reasons"][rows].tolist(),
    )
    people = [
        {
            "row": e.row,
            "nhs_number": e.nhs_number,
            "name": e.name,
            "date_of_birth": e.date_of_birth,
            "details": e.extra,
            "person_id": str(pid),
            "practice_code": str(code),
            "risk": float(risk),
            "band": str(band),
            "rank": int(rank),
            "reasons": _words(why),
        }
        for e, pid, code, risk, band, rank, why in values
    ]
    summary = Summary(
        snapshot_date=meta["date"],
        model_version=worklist_version(meta),
        practices=sorted(practices),
        min_band=min_band,
        rows_read=found.rows_read,
        malformed=len(found.malformed_rows),
        malformed_rows=found.malformed_rows[:MAX_ROWS_LISTED],
        matched=len(people),
        not_on_worklist=len(found.entries) - len(people),
        extra_columns=found.extra_columns,
    )
    return Answer(summary, people)


def _words(raw) -> list[str]:
    if raw is None or (isinstance(raw, float) and raw != raw):
        return []
    return [r["words"] for r in json.loads(raw)]


def as_csv(result: Answer) -> str:
    """The re-identified list as CSV (one row a person; a cell a spreadsheet would run as a formula is prefixed
    with an apostrophe)."""
    rows = [
        {
            "nhs_number": p["nhs_number"],
            "name": p["name"],
            "date_of_birth": p["date_of_birth"],
            **{f"list: {k}": v for k, v in p["details"].items()},
            "practice_code": p["practice_code"],
            "ics_rank": p["rank"],
            "risk_12m": round(p["risk"], 4),
            "band": p["band"],
            "reasons": "; ".join(p["reasons"][:3]),
            "person_id": p["person_id"],
            "list_row": p["row"],
        }
        for p in result.people
    ]
    columns = [
        "nhs_number",
        "name",
        "date_of_birth",
        *(f"list: {k}" for k in result.summary.extra_columns),
        "practice_code",
        "ics_rank",
        "risk_12m",
        "band",
        "reasons",
        "person_id",
        "list_row",
    ]
    table = pd.DataFrame(rows, columns=columns)
    for col in table.columns:
        if table[col].dtype == object or pd.api.types.is_string_dtype(table[col]):
            table[col] = table[col].map(safe_cell)
    buf = io.StringIO()
    table.to_csv(buf, index=False)
    return buf.getvalue()


def log_fields(result: Answer) -> dict:
    """What the access-log entry adds: purpose and how many (the ids returned are recorded as `people`)."""
    return {"purpose": PURPOSE, "count": result.summary.matched, "rows_uploaded": result.summary.rows_read}
