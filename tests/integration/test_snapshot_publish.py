"""The snapshot store's publishing rule: a snapshot of a day before the live one is written beside it but not
served unless asked; pruning never removes the live snapshot."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from phm.core.settings import Settings
from serving.batch import snapshot_files, store


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


def test_a_snapshot_whose_files_changed_after_publishing_is_not_read(tmp_path: Path) -> None:
    """Each file's SHA-256 is kept in the manifest; an edited, truncated or added file stops the read, naming it."""
    settings = Settings(home=tmp_path / "h")
    folder, meta = _write(settings, "2025-04-01")
    assert set(meta[snapshot_files.SUMS]) == {"scores.parquet"}
    assert len(store.current(settings)[1]) == 2
    scores = folder / "scores.parquet"
    good = scores.read_bytes()
    pd.DataFrame({"person_id": [1, 2], "risk": [0.9, 0.2], "practice_code": ["A1", "B2"]}).to_parquet(
        scores, index=False
    )
    with pytest.raises(snapshot_files.SnapshotAltered, match="1 file\\(s\\) differ.*scores.parquet"):
        store.current(settings)
    scores.write_bytes(good[:-100])  # truncated, as on a full disk
    with pytest.raises(snapshot_files.SnapshotAltered, match="scores.parquet"):
        store.current(settings)
    scores.write_bytes(good)
    assert len(store.current(settings)[1]) == 2
    (folder / "manifest.json").write_text(json.dumps({k: v for k, v in meta.items() if k != snapshot_files.SUMS}))
    with pytest.raises(snapshot_files.SnapshotAltered, match="records no checksums"):
        store.current(settings)


def test_a_part_added_to_a_table_written_as_a_folder_is_caught(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "h")

    def write(partial: Path) -> None:  # as Spark writes: a folder of parts
        (partial / "scores.parquet").mkdir()
        frame = pd.DataFrame({"person_id": [1, 2], "risk": [0.1, 0.2], "practice_code": ["A1", "A1"]})
        frame.to_parquet(partial / "scores.parquet" / "part-0.parquet", index=False)

    folder = store.publish_snapshot(settings, {"date": "2025-04-01"}, write)
    assert len(store.current(settings)[1]) == 2
    extra = pd.DataFrame({"person_id": [3], "risk": [0.99], "practice_code": ["A1"]})
    extra.to_parquet(folder / "scores.parquet" / "part-1.parquet", index=False)
    with pytest.raises(snapshot_files.SnapshotAltered, match="scores.parquet/part-1.parquet"):
        store.current(settings)


def test_a_run_that_finishes_after_a_later_day_was_published_does_not_replace_it(tmp_path: Path) -> None:
    """Two runs at once: a re-score of 2025-03-28 (later than the live day when it started) is still writing when
    the run for 2025-04-01 publishes; it must then keep its snapshot aside, not swap the pointer back to an older
    worklist (the live day was read when a run started, long before its swap)."""
    settings = Settings(home=tmp_path / "h")
    _write(settings, "2025-03-25")
    started, go, done = threading.Event(), threading.Event(), {}

    def slow(partial: Path) -> None:
        started.set()
        go.wait(30)
        pd.DataFrame({"person_id": [1], "risk": [0.1], "practice_code": ["A1"]}).to_parquet(
            partial / "scores.parquet", index=False
        )

    def run() -> None:
        meta = {"date": "2025-03-28"}
        done["folder"], done["meta"] = store.publish_snapshot(settings, meta, slow), meta

    behind = threading.Thread(target=run)
    behind.start()
    assert started.wait(30)
    later, _ = _write(settings, "2025-04-01")
    go.set()
    behind.join(30)
    assert store.current_folder(settings) == later and store.live_date(settings) == "2025-04-01"
    assert not done["meta"]["published"] and done["meta"]["live_date"] == "2025-04-01" and done["folder"].is_dir()


def test_tables_rewritten_with_their_checksums_are_caught_by_the_manifests_seal(tmp_path: Path) -> None:
    """Whoever rewrites a table and its checksum in the manifest together (the checksums alone are no proof) is
    caught: the manifest is sealed with an HMAC under the ledger key (kept apart from the snapshots: here the key
    file under security/; PHM_LEDGER_KEY in production)."""
    import hashlib

    settings = Settings(home=tmp_path / "h")
    folder, _ = _write(settings, "2025-04-01")
    assert len(store.current(settings)[1]) == 2 and (settings.home / "security" / "ledger.key").exists()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert isinstance(manifest[snapshot_files.MAC], str)
    moved = pd.DataFrame({"person_id": [1, 2], "risk": [0.9, 0.2], "practice_code": ["B2", "A1"]})
    moved.to_parquet(folder / "scores.parquet", index=False)
    manifest[snapshot_files.SUMS]["scores.parquet"] = hashlib.sha256(
        (folder / "scores.parquet").read_bytes()
    ).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    with pytest.raises(snapshot_files.SnapshotAltered, match="manifest is not as its job sealed it"):
        store.current(settings)
    del manifest[snapshot_files.MAC]
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    with pytest.raises(snapshot_files.SnapshotAltered, match="is not sealed"):
        store.current(settings)


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


def test_the_command_lines_look_up_of_an_altered_snapshot_is_a_clear_refusal(tmp_path: Path) -> None:
    """`phm worklist outcome|caseload` find people's practices in the live snapshot: an altered one is refused
    with why (a 409, as the service pauses the worklist), not a traceback."""
    from serving.outcomes import snapshot_locator
    from serving.queries import QueryError

    settings = Settings(home=tmp_path / "h")
    folder, _ = _write(settings, "2025-04-01")
    assert snapshot_locator(settings)(1) == "A1"
    (folder / "scores.parquet").write_bytes((folder / "scores.parquet").read_bytes()[:-50])
    with pytest.raises(QueryError, match="the worklist is paused: snapshot .* differ") as refused:
        snapshot_locator(settings)
    assert refused.value.status == 409
