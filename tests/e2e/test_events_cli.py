"""`phm events ingest DIR`, `phm events status`, `absorb` and `refresh` as a user runs them: a drop folder with good,
resent and bad messages; the bad one quarantined (exit code 1), files moved to done/, nothing identifiable printed;
a refresh under an approved holdout says how many it holds out."""

from __future__ import annotations

from datetime import datetime, timedelta

from support.cli import run

from features.events.emit import hl7_adt

NHS, BAD = "9434765919", "9434765918"


def test_ingest_a_drop_folder_then_show_the_store(tmp_path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    t = datetime(2026, 1, 5, 9)
    good = hl7_adt("M1", "admit", NHS, "V1", t, start=t, admission_method="21", site_code="RXX01")
    (drop / "a.hl7").write_text(
        good + "\r\n" + hl7_adt("M2", "admit", BAD, "V2", t, start=t, admission_method="21", site_code="RXX01")
    )
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


def test_absorb_lays_the_events_into_the_warehouse_and_prunes_the_store(served_home, ics20k, tmp_path) -> None:
    import duckdb
    import pandas as pd
    from support.homes import registry_copy

    from features.sources.pseudonymise import Pseudonymiser
    from phm.core.settings import DEMO_PSEUDONYM_KEY
    from serving.batch.store import current

    home = registry_copy(served_home, tmp_path / "home", snapshots=True)
    meta, _scores = current(home)
    con = duckdb.connect(str(home.warehouse_path), read_only=True)
    person, site = con.execute(
        "SELECT p.person_id, (SELECT min(site_code) FROM sites) FROM patients p ORDER BY p.person_id LIMIT 1"
    ).fetchone()
    con.close()
    nhs = next(
        n
        for n in pd.read_parquet(ics20k.out_dir / "patients.parquet", columns=["nhs_number"]).nhs_number
        if Pseudonymiser(DEMO_PSEUDONYM_KEY.encode()).person_id(n) == person
    )
    old = datetime.fromisoformat(meta["date"]) - timedelta(days=5)
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a.hl7").write_text(
        "\r\n".join(
            [
                hl7_adt("CLI1", "admit", nhs, "CLIV1", old, start=old, admission_method="21", site_code=site),
                hl7_adt(
                    "CLI2",
                    "discharge",
                    nhs,
                    "CLIV1",
                    old + timedelta(hours=8),
                    start=old,
                    end=old,
                    admission_method="21",
                    site_code=site,
                    discharge_method="1",
                ),
            ]
        )
    )
    assert run("events", "ingest", str(drop), home=home.home).returncode == 0
    out = run("events", "absorb", home=home.home)
    assert out.returncode == 0, out.stderr
    assert "Absorbed 2 events; snapshot of" in out.stdout and "pruned 2, kept 0" in out.stdout
    con = duckdb.connect(str(home.warehouse_path), read_only=True)
    assert con.execute("SELECT count(*) FROM apc_spells WHERE spell_id = 'CLIV1'").fetchone()[0] == 1
    con.close()
    status = run("events", "status", home=home.home)
    assert "0 event(s)" in status.stdout and nhs not in out.stdout + out.stderr + status.stdout
    assert "No stored events to absorb." in run("events", "absorb", home=home.home).stdout


def test_refresh_under_an_approved_holdout_says_how_many_are_held_out(served_home, ics20k, tmp_path) -> None:
    import duckdb
    import pandas as pd
    from support.homes import registry_copy, with_holdout

    from serving.batch.common import default_date
    from serving.batch.daily import score_daily
    from serving.batch.store import current

    home = with_holdout(registry_copy(served_home, tmp_path / "home"), 0.2)
    (home.home / "phm.toml").write_text("[policy.emergency_admission]\nholdout_share = 0.2\n")
    day = default_date(home.warehouse_path)
    score_daily(home, day)
    nhs = pd.read_parquet(ics20k.out_dir / "patients.parquet", columns=["nhs_number"]).nhs_number.iloc[0]
    con = duckdb.connect(str(home.warehouse_path), read_only=True)
    site = con.execute("SELECT min(site_code) FROM sites").fetchone()[0]
    con.close()
    old = datetime.combine(day, datetime.min.time()) - timedelta(days=3)
    drop = tmp_path / "drop"
    drop.mkdir()
    message = hl7_adt("H1", "admit", nhs, "HV1", old, start=old, admission_method="21", site_code=site)
    (drop / "a.hl7").write_text(message)
    assert run("events", "ingest", str(drop), home=home.home).returncode == 0
    out = run("events", "refresh", home=home.home)
    assert out.returncode == 0, out.stderr
    meta, live = current(home)
    held = int(live.held_out.sum())
    assert held > 10 and meta["delta"]["held_out"] == held
    assert f"scores as at {day}, {held:,} held out (the approved holdout)" in out.stdout
