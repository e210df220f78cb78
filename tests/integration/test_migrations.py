"""Migrating the operational database safely, on SQLite and on a real PostgreSQL (found by the configuration
red-team): a migration stopped midway leaves nothing half done (on SQLite its tables had stayed, unrecorded, and
every later upgrade failed on them); a database at a migration this version does not ship (a newer PHM's, another
product's) is refused with a clear error (it was an Alembic traceback, and `phm db status` advised an upgrade); a
database holding another product's tables is left unchanged (PHM's tables were added among them)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect, text

from phm.core.settings import Settings
from phm.operational import database
from support.cli import run

_names = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh(request, tmp_path: Path) -> Settings:
    """Settings of an empty operational database of this test's own."""
    if request.param == "sqlite":
        return Settings(home=tmp_path / "home")
    server = request.getfixturevalue("postgres_url")
    name = f"phm_migrations_{os.getpid()}_{next(_names)}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return Settings(home=tmp_path / "home", database_url=f"{server.rsplit('/', 1)[0]}/{name}")


def _tables(settings: Settings) -> set[str]:
    return set(inspect(database.engine(settings)).get_table_names())


def test_a_migration_that_fails_midway_leaves_nothing_half_done(fresh: Settings) -> None:
    with database.engine(fresh).begin() as conn:  # at migration 0001, as an installation of the first version
        cfg = Config()
        cfg.set_main_option("script_location", str(database.MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        # an index of the same name makes migration 0002's last step fail, after it has created both its tables
        conn.execute(text("CREATE INDEX ix_caseloads_person_id ON sessions (user_name)"))
    with pytest.raises(database.DatabaseError, match="ix_caseloads_person_id"):
        database.upgrade(fresh)
    assert _tables(fresh) == {"alembic_version", "sessions"} and database.revision(fresh) == "0001"
    with database.engine(fresh).begin() as conn:
        conn.execute(text("DROP INDEX ix_caseloads_person_id"))
    assert database.upgrade(fresh) == "0002"  # the next try completes it


def test_a_migration_this_version_does_not_have_is_refused(fresh: Settings) -> None:
    database.upgrade(fresh)
    with database.engine(fresh).begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0003'"))
    with pytest.raises(database.DatabaseError, match="at migration '0003'.*newer version of PHM"):
        database.upgrade(fresh)
    if fresh.database_url is None:  # the command says so too, rather than advising an upgrade
        out = run("db", "status", home=fresh.home)
        assert out.returncode == 2 and "newer version of PHM" in out.stderr and "Traceback" not in out.stderr
        assert "run `phm db upgrade`" not in out.stdout + out.stderr, out.stdout
        out = run("db", "upgrade", home=fresh.home)
        assert out.returncode == 2 and "'0003'" in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_another_products_database_is_left_unchanged(fresh: Settings) -> None:
    with database.engine(fresh).begin() as conn:
        conn.execute(text("CREATE TABLE invoices (id INTEGER PRIMARY KEY)"))
    with pytest.raises(database.DatabaseError, match=r"holds 1 table\(s\) \(invoices\).*another product"):
        database.upgrade(fresh)
    assert _tables(fresh) == {"invoices"}
