"""`phm db` with a mistyped `PHM_DATABASE_URL` (no `://`, a port that is not a number, an unknown kind of
database): one clear error naming the setting, never a stack trace and never the address, which may hold a
password."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.cli import run

SECRET = "s3cret-pw"


@pytest.mark.parametrize(
    "address",
    [
        f"postgresql+psycopg//phm:{SECRET}@db.example/phm",
        f"postgresql+psycopg://phm:{SECRET}@db.example:fivefourthreetwo/phm",
        f"postgres-ql://phm:{SECRET}@db.example/phm",
    ],
)
def test_a_mistyped_database_address_is_one_clear_error(tmp_path: Path, address: str) -> None:
    for command in (("db", "status"), ("db", "upgrade")):
        out = run(*command, home=tmp_path / "home", env={"PHM_DATABASE_URL": address})
        assert out.returncode == 2 and "Traceback" not in out.stderr + out.stdout, out.stderr
        assert "database_url" in out.stderr and SECRET not in out.stderr + out.stdout, out.stderr


def test_a_password_given_as_a_query_parameter_is_never_shown(tmp_path: Path) -> None:
    """The PostgreSQL driver also takes the password as `?password=` (found by the configuration red-team: every
    message about the database showed it, where a password in the address itself is hidden)."""
    address = f"postgresql+psycopg://phm@127.0.0.1:1/phm?sslmode=prefer&password={SECRET}"
    for command in (("db", "status"), ("db", "upgrade")):
        out = run(*command, home=tmp_path / "home", env={"PHM_DATABASE_URL": address})
        assert out.returncode == 2 and "127.0.0.1:1/phm" in out.stderr, out.stderr
        assert SECRET not in out.stderr + out.stdout and "password=***" in out.stderr, out.stderr
