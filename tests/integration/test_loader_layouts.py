"""The loader and the shape of an extract folder: required and optional columns, a missing extract, CSV with
text values and HES column names, a failed load leaving the previous warehouse, a small hand-written extract."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from support.extracts import connect, copy_with

from features.sources.loader import ContractError, load
from features.synthetic.config import GeneratorConfig
from features.synthetic.generator import generate
from phm.core.settings import Settings


@pytest.mark.parametrize(
    "table,column", [("apc_spells", "admission_date"), ("patients", "practice_code"), ("gp_events", "code")]
)
def test_missing_required_column_names_file_and_column(ics_defects, tmp_path: Path, table: str, column: str) -> None:
    src = copy_with(ics_defects, tmp_path, table, drop=column)
    with pytest.raises(ContractError) as exc:
        load(Settings(home=tmp_path / "h"), src)
    assert f"{table}.parquet" in str(exc.value) and f"'{column}'" in str(exc.value)


def test_missing_optional_column_is_reported_not_fatal(ics_defects, tmp_path: Path) -> None:
    src = copy_with(ics_defects, tmp_path, "apc_spells", drop="critical_care_days")
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
    t = t.rename_columns(
        [
            {"admission_date": "ADMIDATE", "admission_method": "ADMIMETH", "primary_diagnosis": "DIAG_4_01"}.get(c, c)
            for c in t.column_names
        ]
    )
    (src / "apc_spells.parquet").unlink()
    pacsv.write_csv(t, src / "apc_spells.csv")
    settings = Settings(home=tmp_path / "h")
    from_csv = load(settings, src).tables["apc_spells"]
    from_parquet = load(Settings(home=tmp_path / "h2"), ics_defects.out_dir).tables["apc_spells"]
    assert from_csv.rows_read == from_parquet.rows_read
    assert from_csv.rows_loaded == from_parquet.rows_loaded
    assert from_csv.quarantined_by_rule == from_parquet.quarantined_by_rule
    types = dict(connect(settings).execute("SELECT column_name, column_type FROM (DESCRIBE apc_spells)").fetchall())
    assert types["admission_date"] == "DATE" and types["critical_care_days"] == "BIGINT"


def test_failed_load_leaves_the_previous_warehouse(ics_defects, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "h")
    load(settings, ics_defects.out_dir)
    before = connect(settings).execute("SELECT count(*) FROM patients").fetchone()[0]
    broken = copy_with(ics_defects, tmp_path, "gp_events", drop="event_date")
    with pytest.raises(ContractError):
        load(settings, broken)
    assert connect(settings).execute("SELECT count(*) FROM patients").fetchone()[0] == before
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
        (
            "S6",
            dead["nhs_number"],
            f"{dead['date_of_death'].year + 1}-01-01",
            "",
            "21",
            "J189",
            site,
            "0",
        ),  # after_death
        ("S7", alive["nhs_number"], "1899-12-31", "", "21", "J189", site, "0"),  # date_out_of_range
        ("S8", alive["nhs_number"], "2022-03-03", "", "21", "J189", site, "-2"),  # out_of_range
    ]
    header = "spell_id,nhs_number,admission_date,discharge_date,admission_method,primary_diagnosis,site_code,critical_care_days\n"
    (src / "apc_spells.csv").write_text(header + "\n".join(",".join(r) for r in rows) + "\n")
    settings = Settings(home=tmp_path / "h")
    report = load(settings, src)
    got = dict(
        connect(settings)
        .execute("""SELECT source_row, rule FROM quarantine
                                          WHERE source_table = 'apc_spells'""")
        .fetchall()
    )
    # a PHM extract is its own source: the quarantine names the file supplied and its data row
    files = connect(settings).execute("SELECT DISTINCT source_file FROM quarantine WHERE source_table = 'apc_spells'")
    assert files.fetchall() == [("apc_spells.csv",)]
    assert got == {
        2: "end_before_start",
        3: "unknown_code",
        4: "duplicate_key",
        5: "unlinked",
        6: "after_death",
        7: "date_out_of_range",
        8: "out_of_range",
    }
    assert report.tables["apc_spells"].rows_loaded == 1
    diag = connect(settings).execute("SELECT primary_diagnosis FROM apc_spells").fetchone()[0]
    assert diag == "J189"
