"""Connections to the operational database and its migrations.

SQLite (the default, `$PHM_HOME/operational/phm.db`) runs in WAL mode with a busy timeout, so the service's
worker processes and the command line can use it at once; PostgreSQL is used when `PHM_DATABASE_URL` is set
(`postgresql+psycopg://...`). `upgrade` brings the schema to the latest migration under a lock (a file lock for
SQLite, an advisory lock for PostgreSQL), so workers starting together migrate once."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from phm.core import redact
from phm.core.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"
_ADVISORY_LOCK = 7_180_018  # any constant shared by every process migrating this database
_engines: dict[tuple[int, str], Engine] = {}


class DatabaseError(RuntimeError):
    """The operational database cannot be reached or migrated (the message never holds a password)."""


def url(settings: Settings) -> str:
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    folder = settings.home / "operational"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return f"sqlite:///{folder / 'phm.db'}"


def shown_url(settings: Settings) -> str:
    """The database's address for messages, with any password hidden: the address's own, and one given as a query
    parameter (`?password=`, `?sslpassword=`, which the PostgreSQL driver also accepts)."""
    address = make_url(url(settings))
    secret = {k: redact.HIDDEN for k in address.query if redact.is_secret_name(k)}
    return address.update_query_dict(secret).render_as_string(hide_password=True).replace("%2A%2A%2A", redact.HIDDEN)


def engine(settings: Settings) -> Engine:
    """One engine per database per process (a forked worker makes its own)."""
    address = url(settings)
    key = (os.getpid(), address)
    found = _engines.get(key)
    if found is None:
        parsed = make_url(address)
        if parsed.get_backend_name() == "sqlite":
            found = create_engine(address, connect_args={"timeout": 30})
            event.listen(found, "connect", _sqlite_pragmas)
            if parsed.database:
                _private(Path(parsed.database))
        else:
            found = create_engine(address, pool_pre_ping=True, pool_size=5, max_overflow=5)
        _engines[key] = found
    return found


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _private(path: Path) -> None:
    """The SQLite file (and its WAL files) readable by the service's user only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def _transactional_sqlite(address: str) -> Engine:
    """An engine whose transactions really hold DDL: Python's sqlite3 commits before CREATE TABLE on its own, so a
    migration stopped midway (a crash, a full disk) would leave tables its revision does not record, and every later
    `upgrade` would fail on them. Here the driver never commits by itself and each transaction is BEGIN IMMEDIATE."""
    found = create_engine(address, connect_args={"timeout": 30})

    @event.listens_for(found, "connect")
    def _connect(connection, record) -> None:
        connection.isolation_level = None  # the driver's own transaction handling off
        _sqlite_pragmas(connection, record)

    @event.listens_for(found, "begin")
    def _begin(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return found


@contextmanager
def _migration_lock(settings: Settings, eng: Engine):
    if eng.dialect.name == "sqlite":
        lock = Path(make_url(url(settings)).database).with_suffix(".migrate.lock")
        migrating = _transactional_sqlite(url(settings))
        with os.fdopen(os.open(lock, os.O_CREAT | os.O_WRONLY, 0o600), "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                with migrating.begin() as conn:
                    yield conn
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
                migrating.dispose()
    else:
        with eng.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK})
            yield conn


def upgrade(settings: Settings) -> str:
    """Bring the schema to the newest migration; returns the revision now in place."""
    from alembic import command
    from alembic.config import Config
    from alembic.util import CommandError

    eng = engine(settings)
    try:
        with _migration_lock(settings, eng) as conn:
            _ours(settings, conn)
            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        return revision(settings)
    except (SQLAlchemyError, OSError, CommandError) as exc:
        raise DatabaseError(
            f"cannot migrate the operational database at {shown_url(settings)}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        ) from exc


def _ours(settings: Settings, conn: Connection) -> None:
    """Refuse (before changing anything) a database PHM did not make or cannot read: tables but no PHM migration
    (another product's database), or a migration this version does not ship (a newer PHM's, another product's)."""
    from alembic.runtime.migration import MigrationContext

    current = MigrationContext.configure(conn).get_current_revision()
    if current is None:
        others = sorted(set(inspect(conn).get_table_names()) - {"alembic_version"})
        if others:
            raise DatabaseError(
                f"{shown_url(settings)} already holds {len(others)} table(s) ({', '.join(others[:5])}) and no PHM "
                "migration: it looks like another product's database, which PHM will not change. Give PHM an empty "
                "database of its own (PHM_DATABASE_URL)"
            )
    else:
        unknown_revision(settings, current)


def unknown_revision(settings: Settings, current: str | None) -> None:
    """A `DatabaseError` when the database is at a migration this version of PHM does not ship."""
    if current is not None and current not in known():
        raise DatabaseError(
            f"{shown_url(settings)} is at migration {current!r}, which this version of PHM does not have (its "
            f"newest is {head()}): the database was migrated by a newer version of PHM, or belongs to another "
            "product. Run the newer version (a database is never migrated down), or point PHM_DATABASE_URL at "
            "PHM's own database"
        )


def known() -> set[str]:
    """Every migration shipped with this version of phm."""
    return {script.revision for script in _scripts().walk_revisions()}


def revision(settings: Settings) -> str | None:
    """The migration the database is at (None before the first)."""
    from alembic.runtime.migration import MigrationContext

    try:
        with engine(settings).connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as exc:
        raise DatabaseError(
            f"cannot reach the operational database at {shown_url(settings)}: {type(exc).__name__}"
        ) from exc


def head() -> str:
    """The newest migration shipped with this version of phm."""
    return _scripts().get_current_head()


def _scripts():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg)
