"""The operational database's address (`database_url`), checked when settings are read so that a slip is one clear
error, never echoing the address (it may hold a password), rather than a stack trace or a 500 when sessions are
first used, or a database that silently loses what is written to it.

A SQLite address must name a file by its absolute path: an in-memory database (`sqlite://`, `:memory:`,
`mode=memory`) is private to each process and gone when it ends (every service worker, every command its own
sessions and contact outcomes), and a relative path depends on the folder each process started in.

This module is part of the foundation layer: it imports nothing else from the project.
"""

from __future__ import annotations

import os

HIDDEN_NOTE = "(the address is not shown: it may hold a password)"


def check(address: str) -> None:
    """A `ValueError` when `address` is not one the operational database can be kept at."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(address)
        parsed.get_dialect()
    except Exception:  # noqa: BLE001 - unparsable, a bad port, an unknown database kind or driver
        raise ValueError(
            f"not a database address SQLAlchemy can use, such as postgresql+psycopg://user:password@host/db {HIDDEN_NOTE}"
        ) from None
    if parsed.get_backend_name() != "sqlite":
        return
    name = parsed.database or ""
    if name in ("", ":memory:") or "memory" in str(parsed.query.get("mode", "")) or name.startswith("file::memory:"):
        raise ValueError(
            "an in-memory SQLite database keeps nothing: each process would have its own, lost when it ends; "
            "name a file (sqlite:////absolute/path/phm.db) or leave database_url unset for SQLite under PHM_HOME"
        )
    if not os.path.isabs(name.removeprefix("file:")):
        raise ValueError(
            "a SQLite database is named by its absolute path (sqlite:////absolute/path/phm.db): a relative one "
            "depends on the folder each process starts in, so the service and the command line would use different "
            "databases"
        )
