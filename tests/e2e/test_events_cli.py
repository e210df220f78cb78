"""`phm events ingest DIR` and `phm events status` as a user runs them: a drop folder with good, resent and bad
messages; the bad one quarantined (exit code 1), files moved to done/, nothing identifiable printed."""

from __future__ import annotations

from datetime import datetime

from support.cli import run

from features.events.emit import hl7_adt

NHS, BAD = "9434765919", "9434765918"


def test_ingest_a_drop_folder_then_show_the_store(tmp_path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    t = datetime(2026, 1, 5, 9)
    good = hl7_adt("M1", "admit", NHS, "V1", t, start=t, admission_method="21", site_code="RXX01")
    (drop / "a.hl7").write_text(good + "\r\n" + hl7_adt("M2", "admit", BAD, "V2", t, start=t, admission_method="21",
                                                        site_code="RXX01"))
    (drop / "b.hl7").write_text(good)
    env = {"PHM_PSEUDONYM_KEY": "s" * 32}
    out = run("events", "ingest", str(drop), home=tmp_path / "home", env=env)
    assert out.returncode == 1, out.stderr
    assert "3 message(s): 1 stored, 1 duplicate(s), quarantined: invalid_nhs_number 1" in out.stdout
    assert sorted(p.name for p in (drop / "done").iterdir()) == ["a.hl7", "b.hl7"]
    assert not list(drop.glob("*.hl7"))
    status = run("events", "status", home=tmp_path / "home", env=env)
    assert status.returncode == 0 and "1 event(s) for 1 people" in status.stdout
    assert "inpatient admit: 1" in status.stdout and "invalid_nhs_number: 1" in status.stdout
    for text in (out.stdout + out.stderr, status.stdout + status.stderr):
        assert NHS not in text and BAD not in text
    again = run("events", "ingest", str(drop), home=tmp_path / "home", env=env)
    assert again.returncode == 0 and "Nothing to read." in again.stdout
