"""The nowcast kept for the service: exactly its schema (a person-level field or a missing range column is
refused), and written whole however many runs overlap."""

from __future__ import annotations

import json
import threading
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from training.nowcast import Nowcast
from training.nowcast_kept import NOWCAST_FILE, load, save


def result(beds: float = 40.0) -> Nowcast:
    frame = pd.DataFrame(
        {
            "site": ["RXX01", "ICS"],
            "date": pd.to_datetime(["2025-04-01", "2025-04-01"]),
            "in_beds_now": [38, 38],
            "nowcast": [beds, beds],
            "q025": [beds - 8, beds - 8],
            "q10": [beds - 5, beds - 5],
            "q90": [beds + 5, beds + 5],
            "q975": [beds + 8, beds + 8],
        }
    )
    return Nowcast(frame, [date(2025, 1, 1), date(2025, 3, 28)], date(2025, 3, 31), ["a note"])


def test_kept_and_read_back_exactly(tmp_path: Path) -> None:
    path = save(result(), tmp_path / "nowcast")
    kept = load(path)
    assert kept.night == date(2025, 3, 31) and kept.calibration.nights == 2 and kept.notes == ["a note"]
    assert [r.site for r in kept.rows] == ["RXX01", "ICS"] and kept.rows[0].q975 == 48.0
    assert kept.made.tzinfo is not None and list(tmp_path.joinpath("nowcast").iterdir()) == [path]
    record = json.loads(path.read_text())
    for damaged in (
        {**record, "rows": [{**record["rows"][0], "nhs_number": "9434765919"}]},  # a person-level field
        {**record, "rows": [{k: v for k, v in record["rows"][0].items() if k != "q10"} | {"q10": "lots"}]},
        {**record, "rows": []},
        {k: v for k, v in record.items() if k != "made"},
    ):
        path.write_text(json.dumps(damaged))
        with pytest.raises(ValidationError):
            load(path)
    path.unlink()
    path.mkdir()
    with pytest.raises(OSError):
        load(path)


def test_overlapping_runs_each_replace_it_whole(tmp_path: Path) -> None:
    folder = tmp_path / "nowcast"
    save(result(0.0), folder)
    failures, bad_reads, stop = [], [], threading.Event()

    def writer(beds: float) -> None:
        for _ in range(150):
            try:
                save(result(beds), folder)
            except Exception as exc:  # noqa: BLE001 - any failure of an overlapping run is the finding
                failures.append(exc)

    def reader() -> None:
        while not stop.is_set():
            try:
                kept = load(folder / NOWCAST_FILE)
                assert len({r.nowcast for r in kept.rows}) == 1  # never one run's rows mixed with another's
            except Exception as exc:  # noqa: BLE001
                bad_reads.append(exc)

    threads = [threading.Thread(target=writer, args=(b,)) for b in (30.0, 60.0)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert failures == [] and bad_reads == []
    assert [p.name for p in folder.iterdir()] == [NOWCAST_FILE]  # no temporary file left behind
