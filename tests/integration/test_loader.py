"""The loader: contracts, quarantine with reasons, linkage, pseudonyms, idempotence, atomicity."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from features.sources.contracts import CONTRACTS, RULES
from features.sources.loader import ContractError, load
from features.sources.pseudonymise import MissingKeyError
from features.synthetic.config import GeneratorConfig
from features.synthetic.generator import MARKER, generate
from phm.core.settings import Settings

PERSON_TABLES = [c.name for c in CONTRACTS if c.person_column]


def _con(settings: Settings) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(settings.warehouse_path), read_only=True)


def test_every_row_is_loaded_or_quarantined(ics_defects_loaded) -> None:
    settings, report = ics_defects_loaded
    con = _con(settings)
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
    assert {d["rule"] for d in injected} >= {"invalid_nhs_number", "future_date", "end_before_start", "unknown_code",
                                             "wrong_type", "missing_value", "duplicate_key", "unknown_reference",
                                             "out_of_range"}
    con = _con(settings)
    got = {(t, r): (rule, col) for t, r, rule, col in con.execute(
        "SELECT source_table, source_row, rule, column_name FROM quarantine").fetchall()}
    for d in injected:
        key = (d["table"], d["row_number"])
        assert key in got, f"injected {d} was loaded"
        assert got[key] == (d["rule"], d["column"]), f"injected {d} quarantined as {got[key]}"


def test_no_valid_row_is_lost(ics_defects, ics_defects_loaded) -> None:
    """Rows not injected are loaded, unless their person is not a (valid) patient: then 'unlinked'."""
    settings, _ = ics_defects_loaded
    injected = {(d["table"], d["row_number"]) for d in
                pq.read_table(ics_defects.out_dir / "truth" / "defects.parquet").to_pylist()}
    con = _con(settings)
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
    con = _con(settings)
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
    con = _con(settings)
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
    ids = [set(r[0] for r in _con(s).execute("SELECT person_id FROM patients").fetchall()) for s in (one, two)]
    assert len(ids[0]) == len(ids[1]) > 3000
    assert not ids[0] & ids[1]


def test_real_data_needs_a_key(ics_defects, tmp_path: Path) -> None:
    real = tmp_path / "real"
    shutil.copytree(ics_defects.out_dir, real)
    (real / MARKER).unlink()
    with pytest.raises(MissingKeyError, match="PHM_PSEUDONYM_KEY is not set"):
        load(Settings(home=tmp_path / "h"), real)


def _copy_with(ics, tmp_path: Path, table: str, drop: str | None = None, csv: bool = False) -> Path:
    src = tmp_path / "src"
    shutil.copytree(ics.out_dir, src)
    t = pq.read_table(src / f"{table}.parquet")
    if drop:
        t = t.drop_columns([drop])
    (src / f"{table}.parquet").unlink()
    if csv:
        pacsv.write_csv(t, src / f"{table}.csv")
    else:
        pq.write_table(t, src / f"{table}.parquet")
    return src


@pytest.mark.parametrize("table,column", [("apc_spells", "admission_date"), ("patients", "practice_code"),
                                          ("gp_events", "code")])
def test_missing_required_column_names_file_and_column(ics_defects, tmp_path: Path, table: str, column: str) -> None:
    src = _copy_with(ics_defects, tmp_path, table, drop=column)
    with pytest.raises(ContractError) as exc:
        load(Settings(home=tmp_path / "h"), src)
    assert f"{table}.parquet" in str(exc.value) and f"'{column}'" in str(exc.value)


def test_missing_optional_column_is_reported_not_fatal(ics_defects, tmp_path: Path) -> None:
    src = _copy_with(ics_defects, tmp_path, "apc_spells", drop="critical_care_days")
    report = load(Settings(home=tmp_path / "h"), src)
    assert "critical_care_days" in report.tables["apc_spells"].missing_optional_columns
    assert report.tables["apc_spells"].rows_loaded > 0


def test_missing_required_extract(ics_defects, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(ics_defects.out_dir, src)
    (src / "patients.parquet").unlink()
    with pytest.raises(ContractError, match="missing required extract 'patients'"):
        load(Settings(home=tmp_path / "h"), src)


def test_csv_extract_with_text_values_and_hes_column_names(ics_defects, tmp_path: Path) -> None:
    """A CSV with HES-style headers and text in a numeric column: typed where possible, bad rows quarantined."""
    src = tmp_path / "src"
    shutil.copytree(ics_defects.out_dir, src)
    t = pq.read_table(src / "apc_spells.parquet")
    t = t.rename_columns([{"admission_date": "ADMIDATE", "admission_method": "ADMIMETH",
                           "primary_diagnosis": "DIAG_4_01"}.get(c, c) for c in t.column_names])
    (src / "apc_spells.parquet").unlink()
    pacsv.write_csv(t, src / "apc_spells.csv")
    settings = Settings(home=tmp_path / "h")
    from_csv = load(settings, src).tables["apc_spells"]
    from_parquet = load(Settings(home=tmp_path / "h2"), ics_defects.out_dir).tables["apc_spells"]
    assert from_csv.rows_read == from_parquet.rows_read
    assert from_csv.rows_loaded == from_parquet.rows_loaded
    assert from_csv.quarantined_by_rule == from_parquet.quarantined_by_rule
    types = dict(_con(settings).execute("SELECT column_name, column_type FROM (DESCRIBE apc_spells)").fetchall())
    assert types["admission_date"] == "DATE" and types["critical_care_days"] == "BIGINT"


def test_failed_load_leaves_the_previous_warehouse(ics_defects, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "h")
    load(settings, ics_defects.out_dir)
    before = _con(settings).execute("SELECT count(*) FROM patients").fetchone()[0]
    broken = _copy_with(ics_defects, tmp_path, "gp_events", drop="event_date")
    with pytest.raises(ContractError):
        load(settings, broken)
    assert _con(settings).execute("SELECT count(*) FROM patients").fetchone()[0] == before
    assert not list(settings.warehouse_path.parent.glob(".*tmp*"))


def test_small_hand_written_extract(tmp_path: Path) -> None:
    """Rules on a handful of rows, each chosen to break exactly one rule."""
    src = tmp_path / "tiny"
    generate(GeneratorConfig(persons=300, seed=5), src)
    for name in ("apc_spells",):
        (src / f"{name}.parquet").unlink()
    pats = pq.read_table(src / "patients.parquet").to_pylist()
    site = pq.read_table(src / "sites.parquet").column("site_code")[0].as_py()
    alive = next(p for p in pats if p["date_of_death"] is None and p["year_of_birth"] < 1990)
    dead = next(p for p in pats if p["date_of_death"] is not None)
    rows = [
        ("S1", alive["nhs_number"], "2021-01-05", "2021-01-09", "21", "J18.9", site, "0"),  # ok (dotted ICD-10)
        ("S2", alive["nhs_number"], "2021-01-05", "2021-01-01", "21", "J189", site, "0"),  # end_before_start
        ("S3", alive["nhs_number"], "2021-01-05", "", "99", "J189", site, "0"),  # unknown_code
        ("S1", alive["nhs_number"], "2022-02-02", "", "21", "J189", site, "0"),  # duplicate_key
        ("S5", "943 476 5919", "2022-02-02", "", "21", "J189", site, "0"),  # unlinked (valid, spaced)
        ("S6", dead["nhs_number"], f"{dead['date_of_death'].year + 1}-01-01", "", "21", "J189", site, "0"),  # after_death
        ("S7", alive["nhs_number"], "1899-12-31", "", "21", "J189", site, "0"),  # date_out_of_range
        ("S8", alive["nhs_number"], "2022-03-03", "", "21", "J189", site, "-2"),  # out_of_range
    ]
    header = "spell_id,nhs_number,admission_date,discharge_date,admission_method,primary_diagnosis,site_code,critical_care_days\n"
    (src / "apc_spells.csv").write_text(header + "\n".join(",".join(r) for r in rows) + "\n")
    settings = Settings(home=tmp_path / "h")
    report = load(settings, src)
    got = dict(_con(settings).execute("""SELECT source_row, rule FROM quarantine
                                          WHERE source_table = 'apc_spells'""").fetchall())
    # a PHM extract is its own source: the quarantine names the file supplied and its data row
    files = _con(settings).execute("SELECT DISTINCT source_file FROM quarantine WHERE source_table = 'apc_spells'")
    assert files.fetchall() == [("apc_spells.csv",)]
    assert got == {2: "end_before_start", 3: "unknown_code", 4: "duplicate_key", 5: "unlinked", 6: "after_death",
                   7: "date_out_of_range", 8: "out_of_range"}
    assert report.tables["apc_spells"].rows_loaded == 1
    diag = _con(settings).execute("SELECT primary_diagnosis FROM apc_spells").fetchone()[0]
    assert diag == "J189"


# ---- hostile and broken extracts (issue 18) -------------------------------------------------------------
def _warehouse_state(settings: Settings) -> tuple[int, int, list]:
    st = settings.warehouse_path.stat()
    return st.st_ino, st.st_mtime_ns, _con(settings).execute("SELECT count(*) FROM patients").fetchall()


@pytest.fixture
def good_home(ics_defects, tmp_path: Path) -> Settings:
    settings = Settings(home=tmp_path / "good")
    load(settings, ics_defects.out_dir)
    return settings


def test_nhs_numbers_are_parsed_strictly(tmp_path: Path) -> None:
    """Hex (DuckDB's TRY_CAST reads 0x...), digit separators and one digit ten times are invalid; spaced and
    dashed numbers are still read."""
    src = tmp_path / "tiny"
    generate(GeneratorConfig(persons=3000, seed=5), src)
    (src / "apc_spells.parquet").unlink()
    pats = pq.read_table(src / "patients.parquet").to_pylist()
    site = pq.read_table(src / "sites.parquet").column("site_code")[0].as_py()
    low = next(p for p in pats if int(p["nhs_number"]) < 2**32 and p["date_of_death"] is None
               and p["year_of_birth"] < 1990)  # its hex form is 10 characters long
    hexed = f"0x{int(low['nhs_number']):08x}"
    n = low["nhs_number"]
    spells = [("S1", hexed), ("S2", f"{n[:3]}_{n[3:6]}_{n[6:]}"[:10]), ("S3", "0000000000"), ("S4", "4444444444"),
              ("S5", f"{n[:3]} {n[3:6]} {n[6:]}"), ("S6", f"{n[:3]}-{n[3:6]}-{n[6:]}"), ("S7", "+" + n[1:])]
    header = "spell_id,nhs_number,admission_date,discharge_date,admission_method,primary_diagnosis,site_code\n"
    (src / "apc_spells.csv").write_text(header + "".join(f"{s},{num},2022-02-0{i + 1},,21,J189,{site}\n"
                                                         for i, (s, num) in enumerate(spells)))
    settings = Settings(home=tmp_path / "h")
    report = load(settings, src)
    got = dict(_con(settings).execute("SELECT source_row, rule FROM quarantine WHERE source_table = 'apc_spells'")
               .fetchall())
    assert got == {1: "invalid_nhs_number", 2: "invalid_nhs_number", 3: "invalid_nhs_number",
                   4: "invalid_nhs_number", 7: "invalid_nhs_number"}
    assert report.tables["apc_spells"].rows_loaded == 2  # the spaced and the dashed forms of a real number


def test_numbers_in_text_columns_are_parsed_strictly(tmp_path: Path) -> None:
    src = tmp_path / "tiny"
    generate(GeneratorConfig(persons=3000, seed=5), src)
    t = pq.read_table(src / "apc_spells.parquet").slice(0, 6)
    (src / "apc_spells.parquet").unlink()
    t = t.set_column(t.column_names.index("critical_care_days"), "critical_care_days",
                     pa.array(["0x2", "1_0", "3.5", "2", "2.0", "0b1"]))
    pacsv.write_csv(t, src / "apc_spells.csv")
    settings = Settings(home=tmp_path / "h")
    load(settings, src)
    rules = dict(_con(settings).execute("""SELECT source_row, rule FROM quarantine WHERE source_table = 'apc_spells'
                                           AND column_name = 'critical_care_days'""").fetchall())
    assert rules == {1: "wrong_type", 2: "wrong_type", 3: "wrong_type", 6: "wrong_type"}


def test_a_ragged_csv_row_is_named_without_its_content(ics_defects, tmp_path: Path) -> None:
    src = _copy_with(ics_defects, tmp_path, "apc_spells", csv=True)
    lines = (src / "apc_spells.csv").read_text().splitlines(keepends=True)
    number = pq.read_table(src / "patients.parquet").column("nhs_number")[0].as_py()
    lines[3] = lines[3].rstrip("\n") + f",{number}\n"  # data row 3 gets an extra field holding an NHS number
    (src / "apc_spells.csv").write_text("".join(lines))
    with pytest.raises(ContractError) as exc:
        load(Settings(home=tmp_path / "h"), src)
    message = str(exc.value)
    header = lines[0].count(",") + 1
    assert f"apc_spells.csv: row 3 has {header + 1} fields where the header has {header}" in message
    assert number not in message and not re.search(r"\d{10}", message) and "\n" not in message


@pytest.mark.parametrize("cut", ["half", "footer"])
def test_a_truncated_parquet_extract_is_a_one_line_error_naming_the_file(good_home: Settings, ics_defects,
                                                                          tmp_path: Path, cut: str) -> None:
    src = tmp_path / "src"
    shutil.copytree(ics_defects.out_dir, src)
    data = (src / "gp_events.parquet").read_bytes()
    (src / "gp_events.parquet").write_bytes(data[: len(data) // 2] if cut == "half" else data[:-50])
    before = _warehouse_state(good_home)
    with pytest.raises(ContractError) as exc:
        load(good_home, src)
    message = str(exc.value)
    assert message.startswith(f"{src / 'gp_events.parquet'}: not a readable Parquet file") and "\n" not in message
    assert _warehouse_state(good_home) == before


def test_a_header_only_patients_extract_is_refused(good_home: Settings, ics_defects, tmp_path: Path) -> None:
    src = _copy_with(ics_defects, tmp_path, "patients", csv=True)
    header = (src / "patients.csv").read_text().splitlines()[0]
    (src / "patients.csv").write_text(header + "\n")
    before = _warehouse_state(good_home)
    with pytest.raises(ContractError, match="patients.csv: no patient could be loaded .0 row.s. read.: an empty, "
                                            "header-only or unusable extract. The warehouse was not changed"):
        load(good_home, src)
    assert _warehouse_state(good_home) == before
    fresh = Settings(home=tmp_path / "fresh")  # not even as a first load
    with pytest.raises(ContractError, match="no patient could be loaded"):
        load(fresh, src)
    assert not fresh.warehouse_path.exists()


@pytest.mark.parametrize("table,keep,problem", [("patients", 0.8, "patients (the population) "),
                                                ("gp_events", 0.5, "gp_events "),
                                                ("home_monitoring", 0.0, "home_monitoring ")])
def test_a_sharp_shrink_is_refused_unless_allowed(good_home: Settings, ics_defects, tmp_path: Path, table: str,
                                                  keep: float, problem: str) -> None:
    """A truncated extract (cut at a row boundary), or one missing altogether, cannot replace a good warehouse."""
    src = tmp_path / "src"
    shutil.copytree(ics_defects.out_dir, src)
    t = pq.read_table(src / f"{table}.parquet")
    (src / f"{table}.parquet").unlink()
    if keep:
        pq.write_table(t.slice(0, int(t.num_rows * keep)), src / f"{table}.parquet")
    before = _warehouse_state(good_home)
    with pytest.raises(ContractError) as exc:
        load(good_home, src)
    assert "this load would shrink the warehouse sharply: " + problem in str(exc.value)
    assert "--allow-shrink" in str(exc.value) and _warehouse_state(good_home) == before
    report = load(good_home, src, allow_shrink=True)
    assert report.shrink_allowed and report.shrink_allowed[0].startswith(problem)
    assert _warehouse_state(good_home) != before


def test_a_small_fall_is_within_the_policy(good_home: Settings, ics_defects, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(ics_defects.out_dir, src)
    t = pq.read_table(src / "gp_events.parquet")
    pq.write_table(t.slice(0, int(t.num_rows * 0.9)), src / "gp_events.parquet")
    assert load(good_home, src).shrink_allowed == []
