"""`phm data practice-list` from a synthetic ICS made with defects (as the demo's is): the list is written from the
people the loader keeps (a valid number, a numeric birth date), never failing on a malformed extract row."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.sources.nhs_number import is_valid, normalise
from support.cli import run as phm

pytestmark = pytest.mark.slow


def test_a_practice_list_is_made_from_an_ics_with_malformed_rows(ics_defects, tmp_path) -> None:
    patients = pd.read_parquet(Path(ics_defects.out_dir) / "patients.parquet")
    patients = patients[patients.registration_end.isna() & patients.date_of_death.isna()]
    good = pd.to_numeric(patients.year_of_birth, errors="coerce").between(1890, 2100) & pd.to_numeric(
        patients.month_of_birth, errors="coerce"
    ).between(1, 12)
    good &= patients.nhs_number.astype(str).map(lambda n: is_valid(normalise(n)))
    practice = patients.practice_code[~good].mode()[0]  # the practice holding the most malformed rows
    everyone = int((good & (patients.practice_code == practice)).sum())  # all its well-formed people
    out = tmp_path / "list.csv"
    done = phm(
        "data",
        "practice-list",
        "--practice",
        practice,
        "--out",
        str(out),
        "--source",
        str(ics_defects.out_dir),
        "--rows",
        str(everyone),
        home=tmp_path / "home",
    )
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(out, dtype=str)
    assert len(table) == everyone and table["NHS number"].map(lambda n: is_valid(normalise(n))).all()
    assert table["Date of birth"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
