"""No predictor uses what was learnt on or after the index date about a stay in progress on it: the features of
someone in hospital on the index date are the same whether the warehouse holds the finished spell (discharged
later, its critical care days counted) or the spell as it was known on the index date (no discharge yet, no
critical care days reported). Every engine; index date 2024-04-01.

Before this was pinned, `critical_care_days_12m` summed the critical care days of spells *admitted* in the year
before, so a stay begun before the index date brought in the critical care days spent after it.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from support.engines import run
from support.feature_tables import IDX, patient, spec_rows, spell, tiny_warehouse

from models import specs

IN_HOSPITAL = 31  # admitted before the index date, in critical care after it


def _warehouse(path: Path, finished: bool) -> Path:
    rows = spec_rows()
    rows["patients"].append(patient(IN_HOSPITAL))
    earlier = spell(IN_HOSPITAL, "2023-11-01", "2023-11-09", method="22")
    earlier["critical_care_days"] = 2  # known: discharged before the index date
    stay = spell(IN_HOSPITAL, "2024-03-30", "2024-04-25" if finished else None, diagnosis="J441")
    stay["discharge_date"] = "2024-04-25" if finished else None
    stay["critical_care_days"] = 12 if finished else None
    rows["apc_spells"] += [earlier, stay]
    return tiny_warehouse(path, rows)


@pytest.mark.parametrize("model", ["emergency_admission", "acsc_admission"])
def test_a_stay_in_progress_leaks_nothing_learnt_after_the_index_date(
    model: str, tmp_path: Path, engine: str, request: pytest.FixtureRequest
) -> None:
    cfg = specs.get(model).build_config([IDX], data_end=date(2025, 6, 30))
    known = run(engine, _warehouse(tmp_path / "known.duckdb", False), cfg, tmp_path / "k.parquet", request)[0]
    later = run(engine, _warehouse(tmp_path / "later.duckdb", True), cfg, tmp_path / "l.parquet", request)[0]
    names = [f.name for f in cfg.features.features]
    pd.testing.assert_frame_equal(known[["person_id", *names]], later[["person_id", *names]])
    person = later.set_index("person_id").loc[IN_HOSPITAL]
    assert person.critical_care_days_12m == 2  # the earlier, finished stay only
    assert person.emergency_admissions_3m == 1 and person.emergency_bed_days_3m == 2  # clipped at the index date
