"""Synthetic practice lists for re-identification tests: a coordinator whose practices hold enough registered
people, a list made from the synthetic ICS's extracts (outside the served home), and scans for identifiers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.sources.nhs_number import generate as new_numbers
from features.synthetic.practice_list import SyntheticList
from serving.users import Role, add_user


@dataclass
class Coordinator:
    name: str
    token: str
    practices: list[str]


def coordinator(home: Path, extracts: Path, name: str, at_least: int) -> Coordinator:
    """A coordinator for the fewest practices (largest first) with at least `at_least` people registered now."""
    patients = pd.read_parquet(
        extracts / "patients.parquet", columns=["practice_code", "registration_end", "date_of_death"]
    )
    now = patients[patients.registration_end.isna() & patients.date_of_death.isna()].practice_code.value_counts()
    chosen = now.index[: int(np.searchsorted(now.cumsum().to_numpy(), at_least)) + 1].tolist()
    _, token = add_user(home, name, Role.coordinator, chosen)
    return Coordinator(name, token, chosen)


def as_csv(made: SyntheticList) -> bytes:
    return made.table.to_csv(index=False).encode()


def with_unknown_people(made: SyntheticList, extracts: Path, seed: int = 11) -> SyntheticList:
    """The same list with the people of other practices replaced by valid numbers no one in the ICS holds."""
    known = set(pd.read_parquet(extracts / "patients.parquet", columns=["nhs_number"]).nhs_number)
    fresh = [n for n in new_numbers(np.random.default_rng(seed), 5_000) if n not in known]
    table = made.table.copy()
    others = np.flatnonzero(made.kind == "other")
    table.loc[others, "NHS number"] = [f"{n[:3]} {n[3:6]} {n[6:]}" for n in fresh[: len(others)]]
    return SyntheticList(table, made.kind, made.practice_code)


def identifiers(made: SyntheticList) -> tuple[set[str], set[str]]:
    """The list's NHS numbers (10 digits) and full names."""
    return {n.replace(" ", "") for n in made.table["NHS number"]}, set(made.table["Name"])


def scan(roots: list[Path], numbers: set[str], names: set[str]) -> list[str]:
    """Files under `roots` holding any of the numbers (plain, spaced or dashed) or names (UTF-8); each as
    `path: what`."""
    digits = re.compile(rb"(?<!\d)(\d{3})[ -]?(\d{3})[ -]?(\d{4})(?!\d)")
    named = re.compile("|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)).encode())
    found = []
    for root in roots:
        for path in [root] if root.is_file() else root.rglob("*"):
            if not path.is_file() or path.is_symlink():
                continue
            data = path.read_bytes()
            if any(b"".join(m.groups()).decode() in numbers for m in digits.finditer(data)):
                found.append(f"{path}: an NHS number")
            if named.search(data):
                found.append(f"{path}: a name")
    return found
