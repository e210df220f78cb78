"""The loader against messy real-world extracts (red-team session 36): identifying source columns kept out of the
quarantine, Parquet columns of an unexpected type read as text (a bad value quarantined, never rounded and never
aborting the load), ambiguous columns, and files that are not files."""

from __future__ import annotations

import shutil
import subprocess
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.disk_full import filling_disk
from support.extracts import connect

from features.sources.formats import convert
from features.sources.formats.common import MAPPING_QUARANTINE
from features.sources.loader import ContractError, load
from features.synthetic.config import GeneratorConfig
from features.synthetic.generator import generate
from phm.core.settings import Settings

KEY = "a-test-key-of-32-characters-long!!"
NUMBER = "9434765870"  # a valid NHS number


def _holds(path: Path, text: str) -> bool:
    """Whether any text in any table of the DuckDB file `path` contains `text`."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        for (table,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall():
            cols = [r[0] for r in con.execute(f'DESCRIBE "{table}"').fetchall()]
            where = " OR ".join(f'CAST("{c}" AS VARCHAR) LIKE ?' for c in cols)
            if con.execute(f'SELECT count(*) FROM "{table}" WHERE {where}', [f"%{text}%"] * len(cols)).fetchone()[0]:
                return True
        return False
    finally:
        con.close()


def test_an_omop_persons_source_value_never_reaches_the_quarantine(tmp_path: Path) -> None:
    """UK OMOP extracts often hold the NHS number in `person_source_value`: a person row the mapping rejects is
    quarantined by file and row, without it (nor names or addresses)."""
    src = tmp_path / "omop"
    src.mkdir()
    (src / "person.csv").write_text(
        "person_id,gender_concept_id,year_of_birth,month_of_birth,race_concept_id,person_source_value,FIRST\n"
        "1,8507,1950,3,8527,9434765919,Ann\n"
        f",8532,1960,5,8527,{NUMBER},Bea\n"
    )
    (src / "visit_occurrence.csv").write_text(
        "visit_occurrence_id,person_id,visit_concept_id,visit_start_date,visit_end_date\n1,1,9202,2023-01-02,2023-01-02\n"
    )
    staged = tmp_path / "staged"
    convert(src, "omop", staged)
    settings = Settings(home=tmp_path / "home", pseudonym_key=KEY)
    load(settings, staged, as_of=date(2025, 1, 1))
    row = connect(settings).execute("SELECT source_file, source_row, rule, record FROM quarantine").fetchall()
    assert [r[:3] for r in row] == [("person.csv", 2, "missing_value")]
    assert '"year_of_birth": "1960"' in row[0][3]
    for text in (NUMBER, "Bea"):
        assert not _holds(settings.warehouse_path, text)
        assert text not in pd.read_parquet(staged / MAPPING_QUARANTINE).to_string()


@pytest.fixture(scope="module")
def small_ics(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 500-person synthetic ICS (Parquet) whose folder the tests copy and break."""
    out = tmp_path_factory.mktemp("small") / "ics"
    generate(GeneratorConfig(persons=500, seed=7), out)
    return out


def _copy(small_ics: Path, tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(small_ics, src)
    return src


def _set_column(src: Path, table: str, column: str, first: list, dtype: pa.DataType) -> int:
    """Rewrite `table`'s Parquet file with `column` stored as `dtype`: `first` for its first rows, then its own
    values converted (`dtype` boolean: True). Returns the table's rows."""
    t = pq.read_table(src / f"{table}.parquet")
    own = t.column(column).to_pylist()[len(first) :]
    rest = [True] * len(own) if dtype == pa.bool_() else [None if v is None else float(v) for v in own]
    values = pa.array(first + rest, dtype)
    pq.write_table(t.set_column(t.column_names.index(column), column, values), src / f"{table}.parquet")
    return t.num_rows


def test_a_parquet_double_in_an_integer_column_is_read_strictly(small_ics: Path, tmp_path: Path) -> None:
    """A fraction is wrong_type (never rounded to the next year), NaN and 1e30 quarantine their rows instead of
    failing the whole load, an infinite reading is wrong_type, and a whole number stored as a double is read."""
    src = _copy(small_ics, tmp_path)
    years = pq.read_table(src / "patients.parquet").column("year_of_birth").to_pylist()
    _set_column(src, "patients", "year_of_birth", [1956.5, float("nan"), 1e30], pa.float64())
    _set_column(src, "home_monitoring", "fev1_pct_predicted", [float("inf")], pa.float64())
    settings = Settings(home=tmp_path / "h")
    report = load(settings, src)
    got = (
        connect(settings)
        .execute("""SELECT source_table, source_row, rule, column_name FROM quarantine
                                       WHERE rule = 'wrong_type' ORDER BY 1, 2""")
        .fetchall()
    )
    assert got == [
        ("home_monitoring", 1, "wrong_type", "fev1_pct_predicted"),
        ("patients", 1, "wrong_type", "year_of_birth"),
        ("patients", 2, "wrong_type", "year_of_birth"),
        ("patients", 3, "wrong_type", "year_of_birth"),
    ]
    assert report.tables["patients"].rows_loaded == len(years) - 3
    loaded = connect(settings).execute("SELECT year_of_birth FROM patients").fetchall()
    assert sorted(y for (y,) in loaded) == sorted(years[3:])


def test_a_parquet_column_of_another_type_is_quarantined_not_misread(small_ics: Path, tmp_path: Path) -> None:
    """An integer in a date column (20190415) is wrong_type, not a failed load; a boolean is not a score."""
    src = _copy(small_ics, tmp_path)
    spells = pq.read_table(src / "apc_spells.parquet")
    days = [d.year * 10000 + d.month * 100 + d.day for d in spells.column("admission_date").to_pylist()]
    pq.write_table(
        spells.set_column(spells.column_names.index("admission_date"), "admission_date", pa.array(days, pa.int64())),
        src / "apc_spells.parquet",
    )
    readings = _set_column(src, "home_monitoring", "symptom_score", [], pa.bool_())
    report = load(Settings(home=tmp_path / "h"), src)
    assert report.tables["apc_spells"].quarantined_by_rule == {"wrong_type": spells.num_rows}
    assert report.tables["home_monitoring"].quarantined_by_rule == {"wrong_type": readings}


@pytest.mark.parametrize(
    "header,message",
    [
        ("year_of_birth", "the header names column 'year_of_birth' twice (columns 2 and 11)"),
        ("NHS_NUMBER", "the header names column 'NHS_NUMBER' twice (columns 1 and 11)"),
        ("YOB", "columns 'year_of_birth' and 'YOB' both give the patients contract's 'year_of_birth'"),
    ],
)
def test_a_column_given_twice_is_refused_not_guessed(
    small_ics: Path, tmp_path: Path, header: str, message: str
) -> None:
    """A second year of birth (the same name, or an accepted alias such as YOB) with other values: which one is
    right is not guessed; the error names the file and both columns, and no warehouse is written."""
    src = _copy(small_ics, tmp_path)
    t = pq.read_table(src / "patients.parquet")
    (src / "patients.parquet").unlink()
    t.append_column(header, pa.array(["1850"] * t.num_rows)).to_pandas().to_csv(src / "patients.csv", index=False)
    settings = Settings(home=tmp_path / "h")
    with pytest.raises(ContractError) as exc:
        load(settings, src)
    assert str(exc.value) == f"{src / 'patients.csv'}: {message}; keep one and load again"
    assert not settings.warehouse_path.exists()


@pytest.mark.parametrize("kind", ["folder", "dangling link"])
def test_an_extract_that_is_not_a_file_is_named_not_skipped(small_ics: Path, tmp_path: Path, kind: str) -> None:
    """A folder where gp_events.parquet should be is an error naming it (it had been a traceback); a link to a
    missing file is not "not supplied" (a first load had silently gone without every GP event)."""
    src = _copy(small_ics, tmp_path)
    target = src / "gp_events.parquet"
    target.unlink()
    if kind == "folder":
        target.mkdir()
    else:
        target.symlink_to(tmp_path / "gone" / "gp_events.parquet")
    settings = Settings(home=tmp_path / "h")
    with pytest.raises(ContractError, match=f"^{target}: (not a file|a symbolic link to a file that does not exist)"):
        load(settings, src)
    assert not settings.warehouse_path.exists()


def test_a_refused_load_with_no_usable_patient_says_why(small_ics: Path, tmp_path: Path) -> None:
    """Every NHS number written as a double (9434765870.0, as pandas writes a column with gaps) is invalid: the
    refusal names the rule every row broke, not only "an empty, header-only or unusable extract"."""
    src = _copy(small_ics, tmp_path)
    rows = _set_column(src, "patients", "nhs_number", [], pa.float64())
    with pytest.raises(ContractError) as exc:
        load(Settings(home=tmp_path / "h"), src)
    assert f"(rows quarantined by rule: invalid_nhs_number {rows:,}). The warehouse was not changed" in str(exc.value)


def test_a_full_disk_is_a_clear_error_and_the_warehouse_is_kept(small_ics: Path, tmp_path: Path) -> None:
    """A new warehouse that cannot be written (disk full) is a one-line error naming the warehouse, not a
    traceback; the previous warehouse is left whole and no part-file is left behind."""
    settings = Settings(home=tmp_path / "h")
    folder = settings.warehouse_path.parent
    folder.mkdir(parents=True, exist_ok=True)
    with filling_disk(folder, "24m", 4096) as disk:
        load(settings, small_ics)
        before = connect(settings).execute("SELECT count(*) FROM patients").fetchone()
        with disk.full():
            with pytest.raises(ContractError) as exc:
                load(settings, small_ics)
            assert sorted(p.name for p in folder.iterdir() if p.name != "filler.bin") == [
                ".phm.duckdb.lock",
                "phm.duckdb",
            ]
        message = str(exc.value)
        assert message.startswith(f"{settings.warehouse_path}: the new warehouse could not be written (")
        assert message.endswith("the previous warehouse was left as it was") and "\n" not in message
        assert connect(settings).execute("SELECT count(*) FROM patients").fetchone() == before


def test_what_a_killed_load_left_is_cleared_by_the_next(small_ics: Path, tmp_path: Path) -> None:
    """A load killed half-way leaves its part-file (pseudonymised rows) and WAL beside the warehouse; the next load
    removes them, and never the part-file of a load still running."""
    settings = Settings(home=tmp_path / "h")
    folder = settings.warehouse_path.parent
    folder.mkdir(parents=True, exist_ok=True)
    ended = subprocess.Popen(["true"])
    ended.wait()
    running = subprocess.Popen(["sleep", "30"])
    try:
        left = [folder / f".phm.duckdb.{ended.pid}.tmp", folder / f".phm.duckdb.{ended.pid}.tmp.wal"]
        alive = folder / f".phm.duckdb.{running.pid}.tmp"
        for part in [*left, alive]:
            part.write_bytes(b"part")
        load(settings, small_ics)
        assert sorted(p.name for p in folder.iterdir()) == sorted([".phm.duckdb.lock", "phm.duckdb", alive.name])
    finally:
        running.kill()
        running.wait()


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16"])
def test_a_csv_not_saved_as_utf8_is_named_by_row_and_column(small_ics: Path, tmp_path: Path, encoding: str) -> None:
    """Excel's default CSV (Windows-1252/Latin-1) or "Unicode text" (UTF-16): the error names the file, and for
    Latin-1 the row and column, says to save as UTF-8 and shows no value (UTF-16 had been a "ragged row")."""
    src = _copy(small_ics, tmp_path)
    t = pq.read_table(src / "practices.parquet").to_pandas()
    (src / "practices.parquet").unlink()
    t.loc[1, "place"] = "Gödeston"
    t.to_csv(src / "practices.csv", index=False, encoding=encoding)
    with pytest.raises(ContractError) as exc:
        load(Settings(home=tmp_path / "h"), src)
    where = "row 2, column 'place' is not UTF-8 text" if encoding == "latin-1" else "saved as UTF-16 text"
    assert str(exc.value).startswith(f"{src / 'practices.csv'}: {where}")
    assert str(exc.value).endswith('as UTF-8 ("CSV UTF-8") and load again')
    assert "Gödeston" not in str(exc.value) and "\n" not in str(exc.value)
