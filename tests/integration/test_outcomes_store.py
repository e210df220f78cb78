"""Contact outcomes and caseloads in the operational database, on SQLite and on a real PostgreSQL server: outcomes
hide people for the configured period and then let them return (the clock is moved), the latest outcome is in
force, enrolment periods are derived, and two processes recording at once lose nothing."""

from __future__ import annotations

import multiprocessing
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from phm.core.settings import OutcomeHide, OutcomeSettings, Settings
from phm.operational import database, outcomes as store
from phm.operational.tables import caseloads, outcomes as table

T0 = datetime(2026, 1, 5, 9, 0, 0)


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request, tmp_path) -> Settings:
    hide = OutcomeHide(contacted=14, declined=30, not_appropriate=365)
    kw = {"home": tmp_path / "home", "outcomes": OutcomeSettings(hide=hide)}
    if request.param == "postgresql":
        kw["database_url"] = request.getfixturevalue("postgres_url")
    found = Settings(**kw)
    database.upgrade(found)
    with database.engine(found).begin() as conn:  # the PostgreSQL server is shared by the session's tests
        conn.execute(table.delete())
        conn.execute(caseloads.delete())
    return found


def hidden_ids(settings: Settings, now: datetime, practices=("A1", "B2")) -> set[int]:
    return {r.person_id for r in store.hidden(settings, practices, now=now)}


def test_outcomes_hide_for_their_period_then_people_return(settings) -> None:
    store.record(settings, 1, "A1", "declined", "ann", "prefers a call in spring", now=T0)
    store.record(settings, 2, "A1", "contacted", "ann", now=T0)
    store.record(settings, 3, "A1", "enrolled", "ann", now=T0)
    store.record(settings, 4, "B2", "not_appropriate", "bob", now=T0)
    assert hidden_ids(settings, T0 + timedelta(days=13)) == {1, 2, 3, 4}
    assert hidden_ids(settings, T0 + timedelta(days=14, seconds=1)) == {1, 3, 4}  # contacted: 14 days
    assert hidden_ids(settings, T0 + timedelta(days=30, seconds=1)) == {3, 4}  # declined: 30 days
    assert hidden_ids(settings, T0 + timedelta(days=366)) == {3}  # enrolled: until changed
    assert hidden_ids(settings, T0 + timedelta(days=366), practices=["B2"]) == set()  # scope: only B2's people
    # the latest outcome is in force: enrolment ends when the person is contacted again (hidden 14 days from then)
    later = T0 + timedelta(days=400)
    store.record(settings, 3, "A1", "contacted", "ann", now=later)
    assert hidden_ids(settings, later + timedelta(days=13)) == {3}
    assert hidden_ids(settings, later + timedelta(days=15)) == set()
    first = next(r for r in store.in_force(settings, person_ids=[1], now=T0))
    assert (first.outcome, first.note, first.recorded_by, first.hidden_until) == (
        store.Outcome.declined,
        "prefers a call in spring",
        "ann",
        T0 + timedelta(days=30),
    )


def test_enrolment_periods_and_history(settings) -> None:
    store.record(settings, 7, "A1", "contacted", "ann", now=T0)
    store.record(settings, 7, "A1", "enrolled", "ann", now=T0 + timedelta(days=1))
    store.record(settings, 7, "A1", "enrolled", "ann", now=T0 + timedelta(days=2))  # already enrolled: same period
    store.record(settings, 7, "A1", "declined", "ann", now=T0 + timedelta(days=50))
    store.record(settings, 8, "A1", "enrolled", "ann", now=T0 + timedelta(days=3))
    periods = store.enrolments(store.history(settings))
    assert [(p["person_id"], p["enrolled_at"], p["ended_at"], p["ended_by"]) for p in periods] == [
        (7, T0 + timedelta(days=1), T0 + timedelta(days=50), "declined"),
        (8, T0 + timedelta(days=3), None, None),
    ]


def test_a_long_or_identifying_note_is_refused_and_nothing_is_stored(settings) -> None:
    with pytest.raises(ValueError, match="longer than 200"):
        store.record(settings, 1, "A1", "declined", "ann", "x" * 201, now=T0)
    with pytest.raises(ValueError, match="NHS number"):
        store.record(settings, 1, "A1", "declined", "ann", "seen with 943 476 5919", now=T0)
    assert store.history(settings) == []


def test_a_caseload_upload_replaces_the_teams_list(settings) -> None:
    assert store.set_caseload(settings, "community matrons", [1, 2, 2, 3], "ann", now=T0) == 3
    store.set_caseload(settings, "frailty team", [3], "bob", now=T0)
    assert store.teams_of(settings, [1, 3, 9]) == {1: ["community matrons"], 3: ["community matrons", "frailty team"]}
    store.set_caseload(settings, "community matrons", [9], "ann", now=T0)
    assert store.teams_of(settings, [1, 3, 9]) == {3: ["frailty team"], 9: ["community matrons"]}


def _worker(url: str | None, home: str, first: int, n: int, queue) -> None:
    settings = Settings(home=home, database_url=url)
    database.upgrade(settings)  # both processes migrate at once: one does it, the other finds it done
    for pid in range(first, first + n):
        store.record(settings, pid, "A1", "contacted", f"worker{first}")
    queue.put(n)


def test_two_processes_recording_at_once_lose_none(settings, tmp_path) -> None:
    url = settings.database_url.get_secret_value() if settings.database_url else None
    home = tmp_path / "shared" if url is None else settings.home  # SQLite: a fresh file migrated by both at once
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, str(home), first, 150, queue)) for first in (1_000, 2_000)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
    assert [p.exitcode for p in procs] == [0, 0]
    assert sorted(queue.get(timeout=5) for _ in procs) == [150, 150]
    check = Settings(home=home, database_url=url)
    with database.engine(check).connect() as conn:
        ids = conn.execute(select(table.c.person_id)).scalars().all()
        assert conn.execute(select(func.count()).select_from(table)).scalar() == 300
    assert sorted(ids) == [*range(1_000, 1_150), *range(2_000, 2_150)]


def test_an_outcome_recorded_in_error_is_withdrawn_once_and_the_one_before_is_in_force_again(settings) -> None:
    contacted = store.record(settings, 5, "A1", "contacted", "ann", now=T0)
    wrong = store.record(settings, 5, "A1", "moved_or_died", "ann", now=T0 + timedelta(days=1))  # mis-click
    enrolled = store.record(settings, 6, "A1", "enrolled", "ann", now=T0)  # also a mistake
    day2 = T0 + timedelta(days=2)
    assert hidden_ids(settings, day2) == {5, 6}
    with pytest.raises(ValueError, match="names the outcome it withdraws"):
        store.record(settings, 5, "A1", "recorded_in_error", "ann", now=day2)
    with pytest.raises(ValueError, match=f"outcome {contacted.outcome_id} is not the one in force for person 5"):
        store.record(settings, 5, "A1", "recorded_in_error", "ann", now=day2, withdraws=contacted.outcome_id)
    back = store.record(settings, 5, "A1", "recorded_in_error", "ann", now=day2, withdraws=wrong.outcome_id)
    # the contacted outcome is in force again: still hidden, until 14 days after it was recorded
    assert (back.hidden, back.hidden_until) == (True, T0 + timedelta(days=14))
    now5 = store.in_force(settings, person_ids=[5], now=day2)
    assert [(r.outcome, r.outcome_id) for r in now5] == [(store.Outcome.contacted, contacted.outcome_id)]
    with pytest.raises(ValueError, match="already withdrawn or replaced"):  # a second click changes nothing
        store.record(settings, 5, "A1", "recorded_in_error", "ann", now=day2, withdraws=wrong.outcome_id)
    gone = store.record(settings, 6, "A1", "recorded_in_error", "ann", now=day2, withdraws=enrolled.outcome_id)
    assert (gone.hidden, store.in_force(settings, person_ids=[6], now=day2)) == (False, [])
    assert hidden_ids(settings, day2) == {5}
    assert hidden_ids(settings, T0 + timedelta(days=15)) == set()  # moved_or_died would have hidden 5 for good
    rows = store.history(settings)
    assert [r["outcome"] for r in rows].count("recorded_in_error") == 2 and len(rows) == 5  # the history keeps all
    assert store.enrolments(rows) == []  # a withdrawn enrolment is no enrolment period
    assert store.withdrawn_ids(rows) == {wrong.outcome_id, enrolled.outcome_id, rows[3]["id"], rows[4]["id"]}


def test_the_same_outcome_sent_twice_in_a_moment_is_stored_once(settings) -> None:
    first = store.record(settings, 9, "A1", "declined", "ann", "call in spring", now=T0)
    again = store.record(settings, 9, "A1", "declined", "ann", "call in spring", now=T0 + timedelta(seconds=3))
    assert again == first and len(store.history(settings)) == 1  # a double click or a reload: one row
    store.record(settings, 9, "A1", "declined", "ann", "call in summer", now=T0 + timedelta(seconds=5))
    store.record(settings, 9, "A1", "declined", "bob", "call in summer", now=T0 + timedelta(seconds=6))
    store.record(settings, 9, "A1", "declined", "bob", "call in summer", now=T0 + timedelta(minutes=3))
    assert len(store.history(settings)) == 4  # another note, another user, or later: each is recorded
