"""The ambulatory care sensitive conditions (ACSC) code list, the generator's ACSC process and the ACSC model's
specification."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from features.cohorts import LabelConfig
from features.sources.codes import (
    ACSC_GROUPS,
    ACSC_ICD10,
    CONDITION_ADMISSION_ICD10,
    CONDITION_KEYS,
    EXACERBATION_ICD10,
    ICD10_PATTERN,
    SYNTHETIC_ACSC_ACUTE,
    is_acsc,
)
from features.synthetic import acsc
from models import specs

STEM = re.compile(r"^[A-Z][0-9]{2}[0-9]?$")


def test_the_list_is_well_formed() -> None:
    assert all(STEM.match(stem) for stem in ACSC_ICD10), [s for s in ACSC_ICD10 if not STEM.match(s)]
    assert not [s for s, n in Counter(ACSC_ICD10).items() if n > 1]  # each stem in one condition only
    assert {g.indicator for g in ACSC_GROUPS} == {"2.3i", "3a"}
    assert len([g for g in ACSC_GROUPS if g.indicator == "2.3i"]) == 11  # the chronic conditions of 2.3.i
    diabetes = next(g for g in ACSC_GROUPS if g.key == "diabetes").icd10
    assert len(diabetes) == 45 and "E100" in diabetes and "E148" in diabetes and "E109" not in diabetes
    ulcer = next(g for g in ACSC_GROUPS if g.key == "ulcer").icd10
    assert len(ulcer) == 24 and "K253" not in ulcer and "K287" not in ulcer  # .3 and .7 (no bleed/perforation) out


@pytest.mark.parametrize(
    "code, expected",
    [
        ("J441", True),
        ("J45.9", True),
        ("I500", True),
        ("I110", True),
        ("I119", True),
        ("I489", True),
        ("I209", True),
        ("F039", True),
        ("E111", True),
        ("N390", True),
        ("N10X", True),
        ("L039", True),
        ("E86X", True),
        ("J181", True),
        ("K254", True),
        ("G409", True),
        ("D509", True),
        ("J069", True),
        ("R02X", True),
        ("i10", True),
        ("E119", False),
        ("E109", False),
        ("J189", False),
        ("J22X", False),
        ("I219", False),
        ("I639", False),
        ("K253", False),
        ("N189", False),
        ("S720", False),
        ("R074", False),
        ("G30", False),
        ("J20", False),
        ("D500", False),
        ("I112", False),
    ],
)
def test_is_acsc(code: str, expected: bool) -> None:
    assert is_acsc(code) is expected


def test_the_generators_codes() -> None:
    assert all(re.match(ICD10_PATTERN, c) and is_acsc(c) for c in SYNTHETIC_ACSC_ACUTE)
    assert all(is_acsc(c) for c in EXACERBATION_ICD10.values())  # COPD and asthma exacerbations are ACSCs
    assert not any(is_acsc(c) for c in acsc.GENERAL) and len(acsc.GENERAL) == 14
    coded = {k: is_acsc(c) for k, c in CONDITION_ADMISSION_ICD10.items()}
    assert coded == {
        "heart_failure": True,
        "atrial_fibrillation": True,
        "diabetes": False,
        "chd": True,
        "stroke": False,
        "dementia": True,
        "ckd": False,
    }


def test_share_matches_the_extracts_coding() -> None:
    """`share` (the truth's chance an admission is an ACSC) against the extract's coding process, drawn many times."""
    rng = np.random.default_rng(5)
    n, draws, day = 6, 200_000, 1000
    onset = np.full((n, len(CONDITION_KEYS)), 10**6)
    held = {1: ["heart_failure"], 2: ["diabetes"], 3: ["heart_failure", "diabetes", "dementia"], 4: ["ckd", "chd"]}
    for person, keys in held.items():
        for k in keys:
            onset[person, CONDITION_KEYS.index(k)] = day - 1
    onset[5, CONDITION_KEYS.index("heart_failure")] = day + 1  # diagnosed the day after
    persons = np.arange(n)
    dep, age = np.array([0.0, 1.0, 0.5, 0.2, 0.9, 0.0]), np.array([40, 80, 70, 90, 60, 50])
    expected = acsc.share(onset, persons, day, dep, age)
    who = np.repeat(persons, draws)
    diag = np.full(who.size, "R074")
    general = np.ones(who.size, bool)
    for key, code in CONDITION_ADMISSION_ICD10.items():  # as tables.HospitalBuilder.spells codes them
        has = (onset[who, CONDITION_KEYS.index(key)] <= day) & (rng.random(who.size) < acsc.CONDITION_CODED)
        diag = np.where(has, code, diag)
        general &= ~has
    diag = acsc.recode(diag, general, dep[who], age[who], rng)
    codes, at = np.unique(diag, return_inverse=True)
    observed = np.bincount(who, weights=np.array([is_acsc(c) for c in codes])[at]) / draws
    assert observed == pytest.approx(expected, abs=0.003)
    assert expected[1] > expected[5] and expected[2] < expected[1]  # a coded condition moves the share


def test_the_acsc_specification() -> None:
    spec = specs.get("acsc-admission")
    assert spec.label_column == "label_acsc_12m" and spec.label.diagnoses == list(ACSC_ICD10)
    assert spec.truth is not None and spec.truth.table == "truth_acsc_12m"
    assert spec.daily.kind == "column" and spec.daily.column == "acsc_risk" and spec.daily.top_share == 0.05
    assert "preventable admission" in spec.daily.rank_title
    names = {f.name for f in spec.features.features}
    assert {"acsc_admissions_12m", "days_since_acsc_admission", "emergency_admissions_12m", "ltc_copd"} <= names
    import pandas as pd

    frame = pd.DataFrame({"acsc_admissions_12m": [0, 2, 1]})
    assert spec.baseline.score(frame).tolist() == [0.0, 2.0, 1.0]


def test_diagnoses_narrow_emergency_admissions_only() -> None:
    assert LabelConfig(diagnoses=["N39"], name="uti").column == "label_uti_12m"
    with pytest.raises(ValueError, match="emergency admissions only"):
        LabelConfig(outcome="exacerbation", horizon_months=None, horizon_days=14, diagnoses=["J44"])


def test_reasons_in_plain_words() -> None:
    from models.explain import phrase

    assert phrase("acsc_admissions_12m", 2.0).startswith("2 emergency admission(s) for a condition usually managed")
    assert phrase("days_since_acsc_admission", 40.0).endswith("40 days ago")


def test_existing_outcomes_read_as_before_the_narrowing_fields() -> None:
    """An approval covers the label's rules: the emergency-admission model's must not change (no re-approval)."""
    assert specs.get("emergency_admission").label.rules() == {
        "outcome": "emergency",
        "horizon_months": 12,
        "horizon_days": None,
        "include_death": False,
    }
    assert specs.get("acsc_admission").label.rules()["diagnoses"] == list(ACSC_ICD10)
