"""A synthetic practice's registered list, as a clinical system would export it (NHS number, name, date of birth,
phone), for the demo and tests of re-identification. The NHS numbers come from a synthetic ICS's `patients`
extract (the only place the generator's numbers exist); names and phone numbers are invented here (phone numbers
from Ofcom's range reserved for drama). Optionally some rows carry a malformed number or belong to other
practices, as real lists do after registrations move."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.sources.nhs_number import corrupt_check_digit, is_valid, normalise

SYNTHETIC_MARKER = "_synthetic.json"
GIVEN = (
    "Aisha",
    "Alan",
    "Amelia",
    "Arjun",
    "Beatrice",
    "Bilal",
    "Carys",
    "Chen",
    "Daniel",
    "Deborah",
    "Elif",
    "Emeka",
    "Fatima",
    "George",
    "Grace",
    "Hamza",
    "Harriet",
    "Ibrahim",
    "Isla",
    "Jack",
    "Joan",
    "Kwame",
    "Leah",
    "Mohammed",
    "Niamh",
    "Oliver",
    "Olu",
    "Priya",
    "Rhys",
    "Ruth",
    "Samir",
    "Sian",
    "Thomas",
    "Usha",
    "Wei",
    "Zofia",
)
FAMILY = (
    "Adeyemi",
    "Ahmed",
    "Begum",
    "Brown",
    "Chowdhury",
    "Davies",
    "Evans",
    "Fernandes",
    "Green",
    "Hughes",
    "Iqbal",
    "Jones",
    "Kaur",
    "Kowalski",
    "Li",
    "Mensah",
    "Morgan",
    "Nowak",
    "O'Brien",
    "Okafor",
    "Patel",
    "Roberts",
    "Shah",
    "Singh",
    "Smith",
    "Taylor",
    "Thomas",
    "Walker",
    "Williams",
    "Wilson",
    "Wright",
    "Yusuf",
)
COLUMNS = ["NHS number", "Name", "Date of birth", "Phone"]


class PracticeListRequestError(ValueError):
    """The list asked for cannot be made from these extracts (not synthetic, unknown practice, too few people)."""


@dataclass
class SyntheticList:
    table: pd.DataFrame  # the CSV's columns (COLUMNS)
    kind: np.ndarray  # per row: "practice", "other" (registered elsewhere in the ICS) or "malformed"
    practice_code: np.ndarray  # per row: where the person is registered


def _patients(extracts: Path) -> pd.DataFrame:
    if not (extracts / SYNTHETIC_MARKER).exists():
        raise PracticeListRequestError(
            f"{extracts}: not a synthetic ICS (no {SYNTHETIC_MARKER}); practice lists are "
            "made only from synthetic extracts"
        )
    cols = ["nhs_number", "practice_code", "year_of_birth", "month_of_birth", "registration_end", "date_of_death"]
    for suffix in (".parquet", ".csv"):
        path = extracts / f"patients{suffix}"
        if path.exists():
            frame = (
                pd.read_parquet(path, columns=cols)
                if suffix == ".parquet"
                else pd.read_csv(path, usecols=cols, dtype=str)
            )
            frame = frame[frame.registration_end.isna() & frame.date_of_death.isna()]
            return frame[_well_formed(frame)]
    raise PracticeListRequestError(f"{extracts}: no patients extract")


def _well_formed(frame: pd.DataFrame) -> pd.Series:
    """Rows the loader keeps (an ICS made with defects has malformed ones): a valid number, a numeric birth date."""
    year = pd.to_numeric(frame.year_of_birth, errors="coerce")
    month = pd.to_numeric(frame.month_of_birth, errors="coerce")
    valid = frame.nhs_number.astype(str).map(lambda n: is_valid(normalise(n)))
    return valid & year.between(1890, 2100) & month.between(1, 12)


def make(
    extracts: Path,
    practices: list[str],
    rows: int,
    seed: int = 1,
    malformed_share: float = 0.0,
    other_share: float = 0.0,
) -> SyntheticList:
    """`rows` rows: people registered now at `practices`, with `other_share` of the rows people of other
    practices and `malformed_share` of them a practice person's number with a wrong check digit."""
    if not 0 <= malformed_share <= 0.5 or not 0 <= other_share <= 0.5 or rows < 1:
        raise PracticeListRequestError("rows must be positive and each share between 0 and 0.5")
    people = _patients(extracts)
    wanted = {p.strip().upper() for p in practices}
    unknown = sorted(wanted - set(people.practice_code))
    if unknown:
        raise PracticeListRequestError(f"no one is registered at practice(s) {unknown}")
    rng = np.random.default_rng([seed, 22])
    mine = people[people.practice_code.isin(wanted)]
    others = people[~people.practice_code.isin(wanted)]
    n_other = int(round(rows * other_share))
    n_mine = rows - n_other
    if n_mine > len(mine) or n_other > len(others):
        raise PracticeListRequestError(
            f"practice(s) {sorted(wanted)} have {len(mine):,} registered people and the rest "
            f"of the ICS {len(others):,}: ask for fewer rows"
        )
    chosen = pd.concat(
        [
            mine.iloc[rng.choice(len(mine), n_mine, replace=False)],
            others.iloc[rng.choice(len(others), n_other, replace=False)],
        ]
    )
    kind = np.array(["practice"] * n_mine + ["other"] * n_other, dtype=object)
    order = rng.permutation(rows)
    chosen, kind = chosen.iloc[order].reset_index(drop=True), kind[order]
    numbers = chosen.nhs_number.astype(str).to_numpy().astype("U10")
    bad = np.flatnonzero(kind == "practice")
    bad = rng.choice(bad, int(round(rows * malformed_share)), replace=False)
    numbers[bad] = corrupt_check_digit(numbers[bad])
    kind[bad] = "malformed"
    day = rng.integers(1, 29, rows)
    names = [f"{g} {f}" for g, f in zip(rng.choice(GIVEN, rows), rng.choice(FAMILY, rows))]
    table = pd.DataFrame(
        {
            "NHS number": [f"{n[:3]} {n[3:6]} {n[6:]}" for n in numbers],
            "Name": names,
            "Date of birth": [
                f"{int(y):04d}-{int(m):02d}-{d:02d}"
                for y, m, d in zip(chosen.year_of_birth, chosen.month_of_birth, day)
            ],
            "Phone": [f"07700 900{x:03d}" for x in rng.integers(0, 1000, rows)],
        },
        columns=COLUMNS,
    )
    return SyntheticList(table, kind, chosen.practice_code.astype(str).to_numpy())
