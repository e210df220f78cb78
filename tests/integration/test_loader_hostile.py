"""The loader against hostile and broken extracts (issue 18): NHS numbers and numbers in text parsed strictly, a
ragged CSV row or a truncated Parquet file named without its content, a header-only or sharply shrunk extract
refused (unless allowed) with the previous warehouse untouched."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from support.extracts import connect, copy_with

from features.sources.loader import ContractError, load
from features.synthetic.config import GeneratorConfig
from features.synthetic.generator import generate
from phm.core.settings import Settings


def _warehouse_state(settings: Settings) -> tuple[int, int, list]:
    st = settings.warehouse_path.stat()
    return st.st_ino, st.st_mtime_ns, connect(settings).execute("SELECT count(*) FROM patients").fetchall()


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
    low = next(
        p for p in pats if int(p["nhs_number"]) < 2**32 and p["date_of_death"] is None and p["year_of_birth"] < 1990
    )  # its hex form is 10 characters long
    hexed = f"0x{int(low['nhs_number']):08x}"
    n = low["nhs_number"]
    spells = [
        ("S1", hexed),
        ("S2", f"{n[:3]}_{n[3:6]}_{n[6:]}"[:10]),
        ("S3", "0000000000"),
        ("S4", "4444444444"),
        ("S5", f"{n[:3]} {n[3:6]} {n[6:]}"),
        ("S6", f"{n[:3]}-{n[3:6]}-{n[6:]}"),
        ("S7", "+" + n[1:]),
    ]
    header = "spell_id,nhs_number,admission_date,discharge_date,admission_method,primary_diagnosis,site_code\n"
    (src / "apc_spells.csv").write_text(
        header + "".join(f"{s},{num},2022-02-0{i + 1},,21,J189,{site}\n" for i, (s, num) in enumerate(spells))
    )
    settings = Settings(home=tmp_path / "h")
    report = load(settings, src)
    got = dict(
        connect(settings)
        .execute("SELECT source_row, rule FROM quarantine WHERE source_table = 'apc_spells'")
        .fetchall()
    )
    assert got == {
        1: "invalid_nhs_number",
        2: "invalid_nhs_number",
        3: "invalid_nhs_number",
        4: "invalid_nhs_number",
        7: "invalid_nhs_number",
    }
    assert report.tables["apc_spells"].rows_loaded == 2  # the spaced and the dashed forms of a real number


def test_numbers_in_text_columns_are_parsed_strictly(tmp_path: Path) -> None:
    src = tmp_path / "tiny"
    generate(GeneratorConfig(persons=3000, seed=5), src)
    t = pq.read_table(src / "apc_spells.parquet").slice(0, 6)
    (src / "apc_spells.parquet").unlink()
    t = t.set_column(
        t.column_names.index("critical_care_days"),
        "critical_care_days",
        pa.array(["0x2", "1_0", "3.5", "2", "2.0", "0b1"]),
    )
    pacsv.write_csv(t, src / "apc_spells.csv")
    settings = Settings(home=tmp_path / "h")
    load(settings, src)
    rules = dict(
        connect(settings)
        .execute("""SELECT source_row, rule FROM quarantine WHERE source_table = 'apc_spells'
                                           AND column_name = 'critical_care_days'""")
        .fetchall()
    )
    assert rules == {1: "wrong_type", 2: "wrong_type", 3: "wrong_type", 6: "wrong_type"}


def test_a_ragged_csv_row_is_named_without_its_content(ics_defects, tmp_path: Path) -> None:
    src = copy_with(ics_defects, tmp_path, "apc_spells", csv=True)
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
def test_a_truncated_parquet_extract_is_a_one_line_error_naming_the_file(
    good_home: Settings, ics_defects, tmp_path: Path, cut: str
) -> None:
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
    src = copy_with(ics_defects, tmp_path, "patients", csv=True)
    header = (src / "patients.csv").read_text().splitlines()[0]
    (src / "patients.csv").write_text(header + "\n")
    before = _warehouse_state(good_home)
    with pytest.raises(
        ContractError,
        match="patients.csv: no patient could be loaded .0 row.s. read.: an empty, "
        "header-only or unusable extract. The warehouse was not changed",
    ):
        load(good_home, src)
    assert _warehouse_state(good_home) == before
    fresh = Settings(home=tmp_path / "fresh")  # not even as a first load
    with pytest.raises(ContractError, match="no patient could be loaded"):
        load(fresh, src)
    assert not fresh.warehouse_path.exists()


@pytest.mark.parametrize(
    "table,keep,problem",
    [
        ("patients", 0.8, "patients (the population) "),
        ("gp_events", 0.5, "gp_events "),
        ("home_monitoring", 0.0, "home_monitoring "),
    ],
)
def test_a_sharp_shrink_is_refused_unless_allowed(
    good_home: Settings, ics_defects, tmp_path: Path, table: str, keep: float, problem: str
) -> None:
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
