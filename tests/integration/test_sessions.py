"""Server-side sessions in the operational database, on SQLite (the default, a file under PHM_HOME) and on a real
PostgreSQL server started for the tests: migrations, revocation, idle and absolute expiry, users changed under a
session, and two processes using the store at once."""

from __future__ import annotations

import multiprocessing
import os
import stat
from datetime import timedelta

import pytest
from sqlalchemy import select, text, update

from phm.core.settings import Settings
from phm.operational import database
from phm.operational.tables import sessions as table
from serving.sessions import Sessions, _now
from serving.users import Role, User, add_user, digest, load_users, set_disabled


def make_user(name: str, token: str, disabled: bool = False) -> User:
    return User(
        name=name,
        role=Role.coordinator,
        practices=["A1"],
        token_sha256=digest(token),
        created="2026-01-01",
        disabled=disabled,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request, tmp_path) -> Settings:
    if request.param == "sqlite":
        found = Settings(home=tmp_path / "home")
    else:
        found = Settings(home=tmp_path / "home", database_url=request.getfixturevalue("postgres_url"))
    database.upgrade(found)
    with database.engine(found).begin() as conn:  # the PostgreSQL server is shared by the session's tests
        conn.execute(table.delete())
    return found


def test_migrations_are_idempotent_and_reach_the_head(settings) -> None:
    assert database.upgrade(settings) == database.head() == database.revision(settings) == "0002"
    with database.engine(settings).connect() as conn:
        assert conn.execute(select(table.c.id_sha256)).all() == []
    if settings.database_url is None:
        path = settings.home / "operational" / "phm.db"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        with database.engine(settings).connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_sign_out_ends_the_session_and_only_a_hash_is_stored(settings) -> None:
    store = Sessions(settings)
    ann, bob = make_user("ann", "t-ann"), make_user("bob", "t-bob")
    users = {"ann": ann, "bob": bob}
    first, second, other = store.issue(ann), store.issue(ann), store.issue(bob)
    found = store.lookup(first, users)
    assert found is not None and found.user == ann and len(found.csrf) == 32
    with database.engine(settings).connect() as conn:
        stored = [r[0] for r in conn.execute(select(table.c.id_sha256))]
    assert first not in stored and digest(first) in stored  # a copy of the database cannot be replayed as a cookie
    assert store.end(first) and store.lookup(first, users) is None and store.lookup(second, users) is not None
    assert store.end_user("ann", "user removed") == 1  # the other session of ann
    assert store.lookup(second, users) is None and store.lookup(other, users) is not None
    assert store.lookup("not-a-session", users) is None and store.lookup("x" * 500, users) is None
    assert store.live("ann") == 0 and store.live("bob") == 1


def test_idle_and_absolute_expiry(settings) -> None:
    store = Sessions(settings)
    ann = make_user("ann", "t-ann")
    idle, old = store.issue(ann), store.issue(ann)
    with database.engine(settings).begin() as conn:
        conn.execute(
            update(table)
            .where(table.c.id_sha256 == digest(idle))
            .values(last_seen_at=_now() - store.idle - timedelta(seconds=1))
        )
        conn.execute(
            update(table).where(table.c.id_sha256 == digest(old)).values(expires_at=_now() - timedelta(seconds=1))
        )
    assert store.lookup(idle, {"ann": ann}) is None and store.lookup(old, {"ann": ann}) is None
    with database.engine(settings).connect() as conn:
        reasons = dict(conn.execute(select(table.c.id_sha256, table.c.revoked_reason)).all())
    assert reasons == {digest(idle): "idle", digest(old): "expired"}


def test_a_changed_removed_or_disabled_user_has_no_session(settings) -> None:
    store = Sessions(settings)
    ann = make_user("ann", "t-ann")
    cookies = [store.issue(ann) for _ in range(3)]
    assert store.lookup(cookies[0], {"ann": make_user("ann", "new token")}) is None  # token replaced
    assert store.lookup(cookies[1], {}) is None  # removed
    assert store.lookup(cookies[2], {"ann": make_user("ann", "t-ann", disabled=True)}) is None
    assert store.lookup(cookies[2], {"ann": ann}) is None  # ended for good, not just while disabled


def test_a_user_disabled_then_enabled_has_no_old_session_even_if_it_was_not_ended(settings) -> None:
    """The command line ends a disabled user's sessions; when it cannot (the database was unreachable) and the user
    is enabled again before their next request, the old session must still be over."""
    store = Sessions(settings)
    add_user(settings.home, "ann", Role.planner)
    kept = store.issue(add_user(settings.home, "bob", Role.planner)[0])
    cookie = store.issue(next(u for u in load_users(settings.home) if u.name == "ann"))
    set_disabled(settings.home, "ann", True)  # no end_user: as when the database could not be reached
    set_disabled(settings.home, "ann", False)
    users = {u.name: u for u in load_users(settings.home)}
    assert store.lookup(cookie, users) is None and store.lookup(kept, users) is not None
    assert store.lookup(store.issue(users["ann"]), users) is not None  # signing in again works


def _worker(url: str | None, home: str, rounds: int, queue) -> None:
    settings = Settings(home=home, database_url=url)
    database.upgrade(settings)  # both processes migrate at once: one does it, the other finds it done
    store = Sessions(settings)
    user = make_user(f"user{os.getpid()}", f"t{os.getpid()}")
    ok = 0
    for _ in range(rounds):
        cookie = store.issue(user)
        ok += store.lookup(cookie, {user.name: user}) is not None
        ok += store.end(cookie)
    queue.put(ok)


def test_two_processes_use_the_store_at_once(settings, tmp_path) -> None:
    url = settings.database_url.get_secret_value() if settings.database_url else None
    home = tmp_path / "shared"  # a fresh database, migrated by two processes starting together
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(url, str(home if url is None else settings.home), 60, queue))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    assert sorted(queue.get(timeout=5) for _ in procs) == [120, 120]
