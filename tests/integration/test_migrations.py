"""Migrating the operational database safely, on SQLite and on a real PostgreSQL (found by the configuration
red-team): a migration stopped midway leaves nothing half done (on SQLite its tables had stayed, unrecorded, and
every later upgrade failed on them)."""

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
