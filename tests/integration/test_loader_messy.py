"""The loader against messy real-world extracts (red-team session 36): identifying source columns kept out of the
quarantine, Parquet columns of an unexpected type read as text (a bad value quarantined, never rounded and never
aborting the load), ambiguous columns, and files that are not files."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
from support.extracts import connect

from features.sources.formats import convert
from features.sources.formats.common import MAPPING_QUARANTINE
from features.sources.loader import load
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
