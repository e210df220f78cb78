"""The snapshot store's partial folders with real processes: a killed run's folder is removed by the next run, a
live run's folder is never touched (its writer holds an OS lock), folders whose writer cannot be checked are
removed only once nothing in them has changed for hours, and a run that fails removes its own folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from phm.core.settings import Settings
from serving.batch.store import (
    POINTER,
    STALE_AFTER,
    WRITER_LOCK,
    current_folder,
    publish_snapshot,
    remove_stale_partials,
    snapshots_root,
)

WRITER = """
import sys, time
from pathlib import Path
from phm.core.settings import Settings
from serving.batch.store import publish_snapshot

home, go = Path(sys.argv[1]), Path(sys.argv[2])

def write(partial):
    (partial / "scores.parquet").write_text("scores")
    while not go.exists():  # paused mid-write until told to go on (or killed)
        time.sleep(0.05)
    (partial / "features.parquet").write_text("features")

publish_snapshot(Settings(home=home), {"date": sys.argv[3]}, write)
"""


def _writer(home: Path, go: Path, day: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(home), str(go), day], stderr=subprocess.PIPE, text=True)


def _partial_with_scores(root: Path, proc: subprocess.Popen, timeout: float = 60) -> Path:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = [p for p in root.glob("*.partial") if (p / "scores.parquet").exists()] if root.exists() else []
        if found:
            return found[0]
        if proc.poll() is not None:
            pytest.fail(f"the writer exited: {proc.stderr.read()}")
        time.sleep(0.05)
    pytest.fail("the writer did not start writing")


def _age(folder: Path, seconds: float) -> None:
    then = time.time() - seconds
    for path in [folder, *folder.rglob("*")]:
        os.utime(path, (then, then))


def _publish(settings: Settings, day: str) -> Path:
    return publish_snapshot(settings, {"date": day}, lambda p: (p / "scores.parquet").write_text("ok"))


def test_a_killed_run_leaves_a_folder_the_next_run_removes(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    first = _publish(settings, "2025-04-01")
    root = snapshots_root(settings)
    proc = _writer(settings.home, tmp_path / "go", "2025-04-02")
    partial = _partial_with_scores(root, proc)
    owner = json.loads((partial / WRITER_LOCK).read_text())
    assert owner["pid"] == proc.pid
    proc.send_signal(signal.SIGKILL)  # killed mid-write: no chance to clean up
    proc.wait()
    assert partial.exists() and current_folder(settings) == first  # the pointer never moved
    second = _publish(settings, "2025-04-02")  # the next run removes what the killed one left
    assert not partial.exists() and not list(root.glob("*.partial")) and not list(root.glob(".*"))
    assert json.loads((root / POINTER).read_text())["folder"] == second.name
    assert sorted(p.name for p in root.iterdir()) == sorted([first.name, second.name, POINTER])


def test_a_live_run_is_never_disturbed(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    root = snapshots_root(settings)
    go = tmp_path / "go"
    proc = _writer(settings.home, go, "2025-04-03")
    try:
        partial = _partial_with_scores(root, proc)
        _age(partial, 2 * STALE_AFTER)  # however old it looks: its writer is alive and holds the lock
        assert remove_stale_partials(root) == []
        other = _publish(settings, "2025-04-02")  # another run finishing meanwhile sweeps too
        assert partial.exists() and (partial / "scores.parquet").read_text() == "scores"
        go.touch()
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    published = current_folder(settings)
    assert published.name.startswith("2025-04-03") and published != other
    assert (published / "features.parquet").read_text() == "features" and not (published / WRITER_LOCK).exists()
    assert not list(root.glob("*.partial"))


def test_folders_whose_writer_cannot_be_checked_wait_until_long_unchanged(tmp_path: Path) -> None:
    root = snapshots_root(Settings(home=tmp_path / "home"))
    root.mkdir(parents=True)
    no_lock = root / "2025-04-01_20250401T010000000000.partial"  # an older version's, or a kill before locking
    no_lock.mkdir()
    (no_lock / "scores.parquet").write_text("x")
    remote = root / "2025-04-01_20250401T020000000000.partial"  # written from another host: its lock is not ours
    remote.mkdir()
    (remote / WRITER_LOCK).write_text(json.dumps({"pid": 1, "host": "another-host.example"}))
    creating = root / ".2025-04-01_20250401T030000000000.creating"
    creating.mkdir()
    assert remove_stale_partials(root) == []  # recently changed: a writer may be working on them
    for folder in (no_lock, remote, creating):
        _age(folder, STALE_AFTER - 60)
    assert remove_stale_partials(root) == []
    for folder in (no_lock, remote, creating):
        _age(folder, STALE_AFTER + 60)
    assert sorted(remove_stale_partials(root)) == sorted([creating.name, no_lock.name, remote.name])
    assert list(root.iterdir()) == []


def test_a_failed_run_removes_its_own_folder(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    first = _publish(settings, "2025-04-01")

    def broken(partial: Path) -> None:
        (partial / "scores.parquet").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        publish_snapshot(settings, {"date": "2025-04-02"}, broken)
    root = snapshots_root(settings)
    assert sorted(p.name for p in root.iterdir()) == sorted([first.name, POINTER])
    assert current_folder(settings) == first


def test_the_trend_never_compares_with_the_same_day(tmp_path: Path) -> None:
    from datetime import date

    from serving.batch.store import earlier_folder

    settings = Settings(home=tmp_path / "home")
    today = _publish(settings, "2025-04-10")
    assert earlier_folder(settings, date(2025, 4, 10)) is None  # the first snapshot: no trend, even on a re-score
    three = _publish(settings, "2025-04-07")
    assert earlier_folder(settings, date(2025, 4, 10)) == three  # no week-old one: the latest earlier day
    eight = _publish(settings, "2025-04-02")
    assert earlier_folder(settings, date(2025, 4, 10)) == eight  # a week before (or more)
    assert earlier_folder(settings, date(2025, 4, 2)) is None and today.exists()
