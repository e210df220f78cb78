"""The access log under a full disk, on the real served service: while the log cannot be appended to, person-
level requests fail closed (no rows leave the service unlogged); once space is freed they work again with no
repair by hand, and the log is intact. A cut-off line left by a crash is set aside and reported, never a
lasting error; a deleted log is never silently replaced by a fresh chain.

The full disk is a small tmpfs mounted over `$PHM_HOME/security` (as root, as CI runs), else a file-size limit
(RLIMIT_FSIZE) set on the service's processes. A refused request is a 503 saying the access log cannot be written."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from phm.core import ledger_check, ledger_file
from phm.core.settings import Settings
from serving.batch.store import current
from serving.users import Role, add_user

pytestmark = pytest.mark.slow
FAIL_CLOSED = (503,)


def _mount_tmpfs(folder: Path, size: str) -> bool:
    if os.geteuid() != 0 or os.environ.get("PHM_TEST_DISK_FULL") == "rlimit":
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)], capture_output=True, text=True
    )
    return done.returncode == 0


def _service_pids(home: Path) -> list[int]:
    """Processes of ours whose PHM_HOME is `home` (the `bentoml serve` parent and its workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                env = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"PHM_HOME={home}".encode() in env:
                found.append(int(entry.name))
    return found


class DiskFull:
    """Fill the disk the access log is on (tmpfs), or cap file sizes of the service's processes (RLIMIT_FSIZE)."""

    def __init__(self, home: Path, tmpfs: bool) -> None:
        self.home, self.tmpfs = home, tmpfs
        self.filler = home / "security" / "filler.bin"

    def fill(self) -> None:
        if self.tmpfs:
            with open(self.filler, "wb", buffering=0) as fh:  # unbuffered: nothing left to flush at close
                try:
                    while True:
                        fh.write(b"\0" * 4096)
                except OSError:
                    pass
        else:
            (self.home / "logs" / "phm.log").write_text("")  # only the access log should reach the limit
            limit = (self.home / "security" / "access_log.jsonl").stat().st_size
            for pid in _service_pids(self.home):
                resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    def free(self) -> None:
        if self.tmpfs:
            self.filler.unlink()
        else:
            for pid in _service_pids(self.home):
                resource.prlimit(pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


@pytest.fixture
def full_disk_service(served_home: Settings, tmp_path_factory: pytest.TempPathFactory):
    """A copy of the served home whose `security` folder (users, access log, signed heads) is on a 2 MB tmpfs
    (or under a file-size limit), served by a real `bentoml serve`; yields (url, token, DiskFull, home)."""
    from support.served import serve

    root = tmp_path_factory.mktemp("disk_full")
    home = root / "home"
    shutil.copytree(served_home.home, home, ignore=shutil.ignore_patterns("security", "spill"))
    security = home / "security"
    security.mkdir(mode=0o700)
    tmpfs = _mount_tmpfs(security, "2m")
    try:
        original = served_home.home / "security"
        for item in original.iterdir():  # the key, the hazard log's head, users (not the session's access log)
            if item.name.startswith("access_log.jsonl"):
                continue
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, security / item.name)
        for head in (security / "anchors").glob("security__access_log*"):
            head.unlink()
        settings = Settings(home=home)
        practice = current(settings)[1].practice_code.value_counts().index[0]
        _, token = add_user(home, "disk coordinator", Role.coordinator, [practice])
        server = serve(settings, tmp_path_factory)
        url = next(server)
        try:
            yield url, token, DiskFull(home, tmpfs), home
        finally:
            next(server, None)  # stops the service; asserts its log holds no stack trace
    finally:
        if tmpfs:
            subprocess.run(["umount", "-l", str(security)], check=False)


def _worklist(url: str, token: str) -> httpx.Response:
    return httpx.get(url + "/api/worklist", headers={"Authorization": f"Bearer {token}"}, params={"top": 5}, timeout=60)


def test_requests_fail_closed_while_full_and_recover_when_space_is_freed(full_disk_service) -> None:
    url, token, disk, home = full_disk_service
    log = home / "security" / "access_log.jsonl"
    first = _worklist(url, token)
    assert first.status_code == 200 and first.json()["rows"], first.text
    ok_before = len(ledger_file.read(log))
    disk.fill()
    statuses = []
    for _ in range(40):  # the log's last page may still hold a few entries; then every request is refused
        r = _worklist(url, token)
        statuses.append(r.status_code)
        if r.status_code != 200:
            assert r.status_code in FAIL_CLOSED and "rows" not in r.text and "person_id" not in r.text
            break
    assert statuses[-1] in FAIL_CLOSED, statuses
    for _ in range(3):
        r = _worklist(url, token)
        assert r.status_code in FAIL_CLOSED and "person_id" not in r.text
    served_while_full = statuses.count(200)
    found = ledger_check.check(log)
    assert found.intact and found.entries == ok_before + served_while_full  # every answered request is logged
    assert not ledger_file.torn_path(log).exists()  # failed appends were rolled back, nothing half-written
    disk.free()
    again = _worklist(url, token)
    assert again.status_code == 200 and again.json()["rows"], again.text  # no repair by hand
    found = ledger_check.check(log)
    assert found.intact and found.entries == ok_before + served_while_full + 1


def test_a_cut_off_line_is_set_aside_and_a_deleted_log_is_not_replaced(full_disk_service) -> None:
    url, token, _disk, home = full_disk_service
    log = home / "security" / "access_log.jsonl"
    assert _worklist(url, token).status_code == 200
    torn = b'{"at": "2026-01-01T00:00:00+00:00", "endpoint": "worklist", "kind": "acc'
    with open(log, "ab") as fh:  # what a crash mid-write leaves
        fh.write(torn)
    assert _worklist(url, token).status_code == 200
    assert torn in ledger_file.torn_path(log).read_bytes()
    found = ledger_check.check(log)
    assert found.intact and found.entries == 2 and any("set aside" in n for n in found.notes)
    kept = log.with_name("kept.jsonl")
    log.rename(kept)  # the log deleted (or moved away) while its signed head remains
    refused = _worklist(url, token)
    assert refused.status_code in FAIL_CLOSED and "person_id" not in refused.text
    assert not log.exists()  # no fresh chain started
    kept.rename(log)
    assert _worklist(url, token).status_code == 200 and ledger_check.check(log).intact
