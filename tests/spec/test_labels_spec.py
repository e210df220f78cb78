"""Spec tests of what counts as an outcome: an admission is the start of a stay, so a transfer between providers
(admission method 2B) that continues a stay is no new admission. Index date 2024-04-01; every engine.

Before this was pinned, someone in hospital on the index date and transferred after it, or an elective stay
moved to another provider, was labelled as having an emergency admission: outcomes that began before the index
date (or were never emergencies) taught the models as if they were new ones.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from support.engines import run
from support.feature_tables import IDX, patient, spec_rows, spell, tiny_warehouse

from models import specs

from features.cohorts import LabelConfig

TRANSFERS = [
    # 1: emergency admission before the index date, transferred after it (discharged and admitted the same day)
    spell(21, "2024-03-28", "2024-04-03"),
    spell(21, "2024-04-03", "2024-04-20", method="2B"),
    # 2: an elective stay in the window moved to another provider the next day
    spell(22, "2024-06-01", "2024-06-04", method="11"),
    spell(22, "2024-06-05", "2024-06-09", method="2B"),
    # 3: a transfer in from a provider outside the data: an emergency admission the data first sees as 2B
    spell(23, "2024-06-01", "2024-06-09", method="2B"),
    # 4: a transfer 10 days after an earlier discharge: a new stay
    spell(24, "2024-03-20", "2024-03-31"),
    spell(24, "2024-04-10", "2024-04-15", method="2B"),
    # 5: a chain of transfers continuing a stay begun before the index date (third day after discharge)
    spell(25, "2024-03-20", "2024-04-02"),
    spell(25, "2024-04-05", "2024-04-08", method="2B"),
    spell(25, "2024-04-08", "2024-04-30", method="2B"),
    # 6: an emergency admission in the window and its transfer: one outcome
    spell(26, "2024-05-01", "2024-05-02", method="22"),
    spell(26, "2024-05-02", "2024-05-10", method="2B"),
    # 7: a respiratory admission before the index date, transferred (still a COPD exacerbation) after it
    spell(27, "2024-03-30", "2024-04-01", diagnosis="J441"),
    spell(27, "2024-04-01", "2024-04-06", method="2B", diagnosis="J441"),
    # 8: the same, discharged four days before the transfer: a new respiratory admission
    spell(28, "2024-03-10", "2024-03-28", diagnosis="J441"),
    spell(28, "2024-04-01", "2024-04-06", method="2B", diagnosis="J441"),
]


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    rows = spec_rows()
    rows["patients"] += [patient(pid) for pid in range(21, 29)]
    rows["apc_spells"] += TRANSFERS
    return tiny_warehouse(tmp_path / "tiny.duckdb", rows)


def test_a_transfer_that_continues_a_stay_is_no_new_admission(
    warehouse: Path, tmp_path: Path, engine: str, request: pytest.FixtureRequest
) -> None:
    cfg = specs.get("emergency_admission").build_config([IDX], data_end=date(2025, 6, 30))
    df = run(engine, warehouse, cfg, tmp_path / "e.parquet", request)[0].set_index("person_id")
    label = df["label_emergency_12m"]
    assert label.loc[[21, 22, 25]].tolist() == [0, 0, 0]  # continued stays
    assert label.loc[[23, 24, 26]].tolist() == [1, 1, 1]  # stays that began in the window
    assert label.loc[1] == 1 and label.loc[7] == 0  # the spec tables' own cases unchanged


def test_a_transferred_exacerbation_is_no_new_flare_up(
    warehouse: Path, tmp_path: Path, engine: str, request: pytest.FixtureRequest
) -> None:
    cfg = specs.get("emergency_admission").build_config(
        [IDX],
        data_end=date(2025, 6, 30),
        label=LabelConfig(outcome="exacerbation", horizon_months=None, horizon_days=14),
    )
    df = run(engine, warehouse, cfg, tmp_path / "x.parquet", request)[0].set_index("person_id")
    label = df["label_exacerbation_14d"]
    assert label.loc[27] == 0 and label.loc[28] == 1
    assert pd.isna(label.loc[[21, 22]]).tolist() == [False, False]


def test_someone_who_dies_on_the_index_date_was_alive_at_its_start(
    tmp_path: Path, engine: str, request: pytest.FixtureRequest
) -> None:
    """Eligible (alive and registered at the start of the day, their registration ending with the death), and the
    death and that day's admission are in the follow-up; moving away on the index date still excludes."""
    rows = spec_rows()
    rows["patients"] += [patient(41, died="2024-04-01"), patient(42, died="2024-04-01"), patient(43, end="2024-04-01")]
    rows["apc_spells"].append(spell(41, "2024-04-01"))
    warehouse = tiny_warehouse(tmp_path / "tiny.duckdb", rows)
    cfg = specs.get("emergency_admission").build_config(
        [IDX], data_end=date(2025, 6, 30), label=LabelConfig(include_death=True)
    )
    df, manifest = run(engine, warehouse, cfg, tmp_path / "d.parquet", request)
    df = df.set_index("person_id")
    assert df.loc[[41, 42], "label_emergency_12m_or_death"].tolist() == [1, 1]
    assert df.loc[[41, 42], "died_in_follow_up"].tolist() == [1, 1]
    assert 43 not in df.index and manifest["cohort"]["excluded_by_reason"]["registration ended"] == 1


def test_the_minimum_age_holds_whatever_the_day_of_birth(
    tmp_path: Path, engine: str, request: pytest.FixtureRequest
) -> None:
    """Only the month of birth is known: someone born in April 2006 may be 17 on 1 April 2024 (born after the 1st),
    so an adult cohort takes them in only from May; born in March 2006, they are 18 whatever the day."""
    rows = spec_rows()
    rows["patients"] += [patient(51, born="2006-04"), patient(52, born="2006-03"), patient(53, born="1934-04")]
    warehouse = tiny_warehouse(tmp_path / "tiny.duckdb", rows)
    for day, eligible in ((IDX, {52, 53}), (date(2024, 5, 1), {51, 52, 53})):
        cfg = specs.get("emergency_admission").build_config([day], data_end=date(2025, 6, 30))
        df = run(engine, warehouse, cfg, tmp_path / f"{day}.parquet", request)[0].set_index("person_id")
        assert set(df.index) & {51, 52, 53} == eligible
        assert df.loc[52, "age"] == 18 and df.loc[53, "age"] == 90  # the age predictor itself is unchanged


def test_unknown_birth_or_registration_is_never_eligible(
    tmp_path: Path, engine: str, request: pytest.FixtureRequest
) -> None:
    """Tables read by name on a cluster have not passed the loader: a missing year or month of birth or registration
    start excludes, counted by reason, where it had made every rule unknown and so the person eligible."""
    rows = spec_rows()
    missing = [patient(61), patient(62), patient(63)]
    missing[0]["year_of_birth"], missing[1]["month_of_birth"], missing[2]["registration_start"] = None, None, None
    rows["patients"] += missing
    warehouse = tiny_warehouse(tmp_path / "tiny.duckdb", rows)
    cfg = specs.get("emergency_admission").build_config([IDX], data_end=date(2025, 6, 30))
    df, manifest = run(engine, warehouse, cfg, tmp_path / "n.parquet", request)
    assert not set(df.person_id) & {61, 62, 63}
    assert manifest["cohort"]["excluded_by_reason"]["birth or registration not recorded"] == 3
