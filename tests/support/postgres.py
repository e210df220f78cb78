"""A throwaway PostgreSQL server for tests: `initdb` into a temporary folder and `pg_ctl start` on a free port on
127.0.0.1 (as the `postgres` user when the tests run as root, since PostgreSQL refuses to run as root).
`.ci/postgres` installs the Debian package; without it the tests that need it are skipped with a message."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from support.served import free_port


def _bin_dir() -> Path | None:
    explicit = os.environ.get("PHM_PG_BIN")
    candidates = [explicit] if explicit else sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for c in candidates:
        if c and (Path(c) / "initdb").exists() and (Path(c) / "pg_ctl").exists():
            return Path(c)
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def start_postgres():
    """Start a cluster in a fresh temporary folder (one the `postgres` user can reach); yields its SQLAlchemy URL,
    then stops it and removes the folder."""
    bindir = _bin_dir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL is not installed (run `bash .ci/postgres`, or set PHM_PG_BIN): the PostgreSQL "
            "variant of the operational-database tests cannot run"
        )
    root = Path(tempfile.mkdtemp(prefix="phm-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir(exist_ok=True)
    as_root = os.geteuid() == 0
    prefix: list[str] = []
    if as_root:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
        os.chmod(root, 0o700)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = free_port()

    def run(*cmd: str) -> None:
        out = subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed: {out.stderr[-2000:]}")

    run(str(bindir / "initdb"), "-D", str(data), "-U", "phm", "-A", "trust", "--no-sync", "-E", "UTF8")
    run(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(root / "server.log"),
        "-w",
        "-o",
        f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off",
        "start",
    )
    try:
        run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "phm", "phm_ops")
        yield f"postgresql+psycopg://phm@127.0.0.1:{port}/phm_ops"
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(root, ignore_errors=True)
