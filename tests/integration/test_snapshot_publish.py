"""The snapshot store's publishing rule: a snapshot of a day before the live one is written beside it but not
served unless asked; pruning never removes the live snapshot."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from phm.core.settings import Settings
from serving.batch import store


def _write(settings: Settings, day: str, publish: bool | None = None) -> tuple[Path, dict]:
    meta = {"date": day}

    def write(partial: Path) -> None:
        pd.DataFrame({"person_id": [1, 2], "risk": [0.1, 0.2], "practice_code": ["A1", "A1"]}).to_parquet(
            partial / "scores.parquet", index=False
        )

    return store.publish_snapshot(settings, meta, write, publish), meta


def test_an_earlier_day_is_kept_but_not_served_unless_published(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "h")
    today, meta = _write(settings, "2025-04-01")
    assert meta["published"] and store.current_folder(settings) == today
    past, meta = _write(settings, "2025-03-01")
    assert not meta["published"] and meta["live_date"] == "2025-04-01"
    assert past.is_dir() and store.current_folder(settings) == today
    again, meta = _write(settings, "2025-04-01")  # a re-score of the live day is served
    assert meta["published"] and store.current_folder(settings) == again
    forced, meta = _write(settings, "2025-03-01", publish=True)
    assert meta["published"] and store.current_folder(settings) == forced
    later, meta = _write(settings, "2025-04-02")
    assert meta["published"] and store.current_folder(settings) == later


def test_pruning_keeps_the_live_snapshot(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "h")
    live, _ = _write(settings, "2020-01-01")
    for day in range(1, store.KEEP + 3):  # later days written but, for the test, never published
        _write(settings, f"2021-01-{day:02d}", publish=False)
    assert store.current_folder(settings) == live and live.is_dir()
    done = [p for p in store.snapshots_root(settings).iterdir() if p.is_dir()]
    assert len(done) == store.KEEP + 1  # the newest KEEP and the live one


def test_a_published_snapshot_signals_the_running_service(tmp_path: Path) -> None:
    # `phm score daily` used to move the pointer without telling the service: every worker kept yesterday's
    # worklist until someone called POST /api/admin/reload, and a worker that reloaded for another reason (a
    # safety officer's decision) served the new one beside one still serving the old
    settings = Settings(home=tmp_path / "h")
    signal = settings.home.joinpath(*store.RELOAD_SIGNAL)
    _write(settings, "2025-04-01")
    assert signal.is_file()
    first = signal.stat().st_mtime_ns, signal.read_text()
    _write(settings, "2025-03-01")  # a past day kept beside the live one: nothing new is served, no reload
    assert (signal.stat().st_mtime_ns, signal.read_text()) == first
    time.sleep(0.01)
    _write(settings, "2025-04-02")
    assert (signal.stat().st_mtime_ns, signal.read_text()) != first
