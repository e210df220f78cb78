"""`phm events ingest` against hostile drop folders, as a user runs it: a message nested too deeply for the JSON
reader or the FHIR validator is quarantined (the rest of the folder is stored, no traceback, the file moves to
done/), two readers of one folder never fail on a file the other has taken, and a file whose name is already in
done/ does not replace the earlier one."""

from __future__ import annotations

import os
from datetime import datetime

from support.cli import run
from support.hostile_events import nested_encounter_json

from features.events import drop as drop_folder
from features.events.emit import hl7_adt
from features.events.store import EventStore, events_root, ingest
from phm.core.settings import Settings
from phm.core.writer_lock import sole_writer

NHS = "9434765919"
ENV = {"PHM_PSEUDONYM_KEY": "s" * 32}
T = datetime(2026, 1, 5, 9)


def good(message_id: str, visit: str) -> str:
    return hl7_adt(message_id, "admit", NHS, visit, T, start=T, admission_method="21", site_code="RXX01")


def test_a_deeply_nested_message_is_quarantined_and_the_rest_stored(tmp_path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a.json").write_text(nested_encounter_json(NHS))
    (drop / "b.json").write_text('{"resourceType": "Encounter", "x": ' + "[" * 50_000 + "]" * 50_000 + "}")
    (drop / "c.hl7").write_text(good("G1", "V1"))
    out = run("events", "ingest", str(drop), home=tmp_path / "home", env=ENV)
    text = out.stdout + out.stderr
    assert out.returncode == 1 and "Traceback" not in text and "RecursionError" not in text, text
    assert "3 message(s): 1 stored, 0 duplicate(s), quarantined: unparseable 2" in out.stdout
    assert NHS not in text
    assert sorted(p.name for p in (drop / "done").iterdir()) == ["a.json", "b.json", "c.hl7"]
    status = run("events", "status", home=tmp_path / "home", env=ENV)
    assert "1 event(s)" in status.stdout and "unparseable: 2" in status.stdout


def test_two_readers_of_one_folder_skip_what_the_other_took(tmp_path) -> None:
    home = Settings(home=tmp_path / "home", pseudonym_key="s" * 32)
    drop = tmp_path / "drop"
    drop.mkdir()
    for i in range(3):
        (drop / f"{i}.hl7").write_text(good(f"R{i}", f"RV{i}"))
    mine = drop_folder.pending(drop)  # this reader lists the files, then the other takes one before it reads
    theirs = mine[1:2]
    assert ingest(home, drop_folder.read(theirs)).accepted == 1
    drop_folder.mark_done(drop, theirs)
    report = ingest(home, drop_folder.read(mine))
    assert (report.received, report.accepted, report.duplicates) == (2, 2, 0)
    drop_folder.mark_done(drop, mine)
    assert sorted(p.name for p in (drop / "done").iterdir()) == ["0.hl7", "1.hl7", "2.hl7"]
    assert len(EventStore(events_root(home)).events()) == 3


def test_a_name_already_in_done_keeps_both_files(tmp_path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "adt.hl7").write_text(good("D1", "DV1"))
    assert run("events", "ingest", str(drop), home=tmp_path / "home", env=ENV).returncode == 0
    (drop / "adt.hl7").write_text(good("D2", "DV2"))  # the engine reuses the name the next day
    assert run("events", "ingest", str(drop), home=tmp_path / "home", env=ENV).returncode == 0
    kept = sorted((drop / "done").iterdir())
    assert len(kept) == 2 and {p.read_bytes() for p in kept} == {good("D1", "DV1").encode(), good("D2", "DV2").encode()}


def test_a_file_named_done_stops_the_ingest_before_anything_is_read(tmp_path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a.hl7").write_text(good("F1", "FV1"))
    (drop / "done").write_text("not a folder")
    out = run("events", "ingest", str(drop), home=tmp_path / "home", env=ENV)
    assert out.returncode == 2 and "done: not a folder" in out.stderr and "Traceback" not in out.stderr
    assert (drop / "a.hl7").exists() and not (tmp_path / "home" / "warehouse" / "events").exists()


def test_a_second_absorb_at_the_same_time_is_refused(ics20k_loaded, tmp_path) -> None:
    from support.homes import copied_home

    home = copied_home(ics20k_loaded[0], tmp_path / "home")
    assert ingest(home, [("test", good("A1", "AV1"))]).received == 1  # quarantined: unlinked
    before = sorted(events_root(home).rglob("*.parquet"))
    with sole_writer(home.warehouse_path, "a `phm events absorb`"):  # a scheduled absorb is running
        out = run("events", "absorb", home=home.home)
    said = " ".join(out.stderr.split())
    assert out.returncode == 2 and f"a `phm events absorb` (process {os.getpid()}) is writing it now" in said, said
    assert "Traceback" not in out.stderr and sorted(events_root(home).rglob("*.parquet")) == before


def test_a_file_too_large_to_read_is_set_aside_and_the_rest_stored(tmp_path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "huge.hl7").write_text("\r".join(good(f"H{i}", f"HV{i}") for i in range(400)))  # ~100 KB
    (drop / "small.hl7").write_text(good("S1", "SV1"))
    out = run("events", "ingest", str(drop), "--max-mb", "0.05", home=tmp_path / "home", env=ENV)
    said = " ".join(out.stderr.split())
    assert out.returncode == 0 and "huge.hl7: larger than 0.05 MB, so not read (moved to" in said, out.stderr
    assert "1 file(s), 1 message(s): 1 stored" in out.stdout
    assert [p.name for p in (drop / "refused").iterdir()] == ["huge.hl7"]
    assert [p.name for p in (drop / "done").iterdir()] == ["small.hl7"]
