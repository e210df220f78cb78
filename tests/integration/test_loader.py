"""The loader on the synthetic ICS with injected defects: every row loaded or quarantined with its rule, no valid
row lost, the quarantine without NHS numbers, the load report, pseudonyms and linkage, idempotence and keys."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from support.extracts import connect

from features.sources.contracts import CONTRACTS, RULES
from features.sources.loader import load
from features.sources.pseudonymise import MissingKeyError
from features.synthetic.generator import MARKER
from phm.core.settings import Settings

PERSON_TABLES = [c.name for c in CONTRACTS if c.person_column]


def test_every_row_is_loaded_or_quarantined(ics_defects_loaded) -> None:
    settings, report = ics_defects_loaded
    con = connect(settings)
    for name, rep in report.tables.items():
        assert rep.rows_read == rep.rows_loaded + rep.rows_quarantined, name
        in_q = con.execute("SELECT count(*) FROM quarantine WHERE source_table = ?", [name]).fetchone()[0]
        assert in_q == rep.rows_quarantined, name
        assert con.execute(f"SELECT count(*) FROM {name}").fetchone()[0] == rep.rows_loaded
        raw = pq.read_metadata(Path(report.source) / f"{name}.parquet").num_rows
        assert rep.rows_read == raw, name


def test_each_injected_defect_is_quarantined_with_its_rule(ics_defects, ics_defects_loaded) -> None:
    settings, _ = ics_defects_loaded
    injected = pq.read_table(ics_defects.out_dir / "truth" / "defects.parquet").to_pylist()
    assert len(injected) > 300
    assert {d["rule"] for d in injected} >= {
        "invalid_nhs_number",
        "future_date",
        "end_before_start",
        "unknown_code",
        "wrong_type",
        "missing_value",
        "duplicate_key",
        "unknown_reference",
        "out_of_range",
    }
    con = connect(settings)
    got = {
        (t, r): (rule, col)
        for t, r, rule, col in con.execute(
            "SELECT source_table, source_row, rule, column_name FROM quarantine"
        ).fetchall()
    }
    for d in injected:
        key = (d["table"], d["row_number"])
        assert key in got, f"injected {d} was loaded"
        assert got[key] == (d["rule"], d["column"]), f"injected {d} quarantined as {got[key]}"


def test_no_valid_row_is_lost(ics_defects, ics_defects_loaded) -> None:
    """Rows not injected are loaded, unless their person is not a (valid) patient: then 'unlinked'."""
    settings, _ = ics_defects_loaded
    injected = {
        (d["table"], d["row_number"])
        for d in pq.read_table(ics_defects.out_dir / "truth" / "defects.parquet").to_pylist()
    }
    con = connect(settings)
    other = con.execute("SELECT source_table, source_row, rule FROM quarantine").fetchall()
    for table, row, rule in other:
        if (table, row) not in injected:
            assert rule == "unlinked", (table, row, rule)
    # and every unlinked row belongs to a non-resident or to a patient whose own record was quarantined
    numbers = pq.read_table(ics_defects.out_dir / "patients.parquet").column("nhs_number").to_pylist()
    patients = set(numbers)
    quarantined_patients = {numbers[row - 1] for t, row in injected if t == "patients"}
    spells = pq.read_table(ics_defects.out_dir / "apc_spells.parquet", columns=["nhs_number"]).column(0).to_pylist()
    unlinked_rows = [r for (t, r, rule) in other if t == "apc_spells" and rule == "unlinked"]
    assert unlinked_rows
    for row in unlinked_rows:
        assert spells[row - 1] not in patients or spells[row - 1] in quarantined_patients, row


def test_quarantine_keeps_the_record_without_the_nhs_number(ics_defects, ics_defects_loaded) -> None:
    settings, _ = ics_defects_loaded
    con = connect(settings)
    row, record = con.execute("""SELECT source_row, record FROM quarantine WHERE source_table = 'apc_spells'
                                 AND rule = 'wrong_type' AND column_name = 'critical_care_days' LIMIT 1""").fetchone()
    fields = json.loads(record)
    assert fields["critical_care_days"] == "two"
    assert "nhs_number" not in fields
    src = pq.read_table(ics_defects.out_dir / "apc_spells.parquet").slice(row - 1, 1).to_pylist()[0]
    assert fields["spell_id"] == src["spell_id"]


def test_load_report_counts_and_saved_json(ics_defects_loaded) -> None:
    settings, report = ics_defects_loaded
    saved = json.loads((settings.reports_dir / "load_report.json").read_text())
    assert saved["tables"]["apc_spells"]["rows_loaded"] == report.tables["apc_spells"].rows_loaded
    for name in PERSON_TABLES:
        if name == "patients":
            continue
        rep = report.tables[name]
        assert rep.linkage_rate is not None and 0.9 < rep.linkage_rate <= 1.0, name
        assert set(rep.quarantined_by_rule) <= set(RULES)
    assert report.tables["ae_attendances"].rows_unlinked > 0  # non-residents attend A&E
    assert 0.8 < report.ethnicity_known_share < 0.96
    assert report.imd_linked_share > 0.97
    assert report.synthetic and report.demo_key


def test_warehouse_is_pseudonymised_and_linked(ics20k, ics20k_loaded) -> None:
    settings, report = ics20k_loaded
    con = connect(settings)
    cols = {r[0] for r in con.execute("SELECT column_name FROM (DESCRIBE apc_spells)").fetchall()}
    assert "person_id" in cols and "nhs_number" not in cols
    unlinked = con.execute("""SELECT count(*) FROM apc_spells WHERE person_id NOT IN
                              (SELECT person_id FROM patients)""").fetchone()[0]
    assert unlinked == 0
    # all 20,000 patients loaded when nothing was injected; truth tables keyed by the same pseudonym
    assert report.tables["patients"].rows_loaded == 20_000
    truth_linked = con.execute("""SELECT count(*) FROM truth_emergency_12m t
                                  JOIN patients p USING (person_id)""").fetchone()[0]
    assert truth_linked == con.execute("SELECT count(*) FROM truth_emergency_12m").fetchone()[0]


def test_same_extract_twice_gives_the_same_warehouse(ics_defects, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "h")
    first, second = tmp_path / "w1.duckdb", tmp_path / "w2.duckdb"
    load(settings, ics_defects.out_dir, warehouse=first)
    load(settings, ics_defects.out_dir, warehouse=second)
    load(settings, ics_defects.out_dir, warehouse=second)  # reload over an existing warehouse
    a, b = duckdb.connect(str(first), read_only=True), duckdb.connect(str(second), read_only=True)
    tables = [r[0] for r in a.execute("SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall()]
    assert tables == [r[0] for r in b.execute("SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall()]
    for t in tables:
        assert a.execute(f"SELECT * FROM {t}").fetchall() == b.execute(f"SELECT * FROM {t}").fetchall(), t


def test_pseudonyms_depend_on_the_key(ics_defects, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHM_PSEUDONYM_KEY", "a-real-secret-of-sufficient-length-1")
    one = Settings(home=tmp_path / "one")
    load(one, ics_defects.out_dir)
    monkeypatch.setenv("PHM_PSEUDONYM_KEY", "a-real-secret-of-sufficient-length-2")
    two = Settings(home=tmp_path / "two")
    report = load(two, ics_defects.out_dir)
    assert not report.demo_key
    ids = [set(r[0] for r in connect(s).execute("SELECT person_id FROM patients").fetchall()) for s in (one, two)]
    assert len(ids[0]) == len(ids[1]) > 3000
    assert not ids[0] & ids[1]


def test_real_data_needs_a_key(ics_defects, tmp_path: Path) -> None:
    real = tmp_path / "real"
    shutil.copytree(ics_defects.out_dir, real)
    (real / MARKER).unlink()
    with pytest.raises(MissingKeyError, match="PHM_PSEUDONYM_KEY is not set"):
        load(Settings(home=tmp_path / "h"), real)
