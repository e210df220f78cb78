"""The groups an audit compares, and the data-coverage measures shown beside them.

Standard groupings for the product's risk models: NHS ethnic category and the five broad groups
(`Unknown` = not stated / not known, kept as its own group), IMD quintile, Core20 vs the rest, sex,
age band, and broad ethnicity x Core20. Any other table of scores names its own group columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.sources.codes import BROAD_ETHNIC_GROUP, ETHNIC_CATEGORIES, SEX_CODES

UNKNOWN_ETHNICITY = "Unknown"
NO_IMD = "Unknown (no IMD link)"
CORE20 = "Core20 (most deprived 20%)"
REST = "Rest of population"


@dataclass(frozen=True)
class Grouping:
    name: str
    title: str
    column: str
    adjustable: bool = True  # compare with the reference standardised to the group's age-sex mix
    stratum: str | None = None  # column of strata for that adjustment (default: age band x sex)
    judged: tuple[str, ...] | None = None  # metrics that can flag here (default: the audit's flag_metrics)
    expected: tuple[str, ...] = ()  # groups the report names when no one in the data is in them


@dataclass(frozen=True)
class CoverageMeasure:
    name: str
    description: str
    column: str
    kind: str = "mean"  # "mean" per person, or "ratio" of two column sums (column = "num/den")


QUINTILES = {1: "Q1 (most deprived)", 2: "Q2", 3: "Q3", 4: "Q4", 5: "Q5 (least deprived)"}
BROAD_GROUPS = tuple(dict.fromkeys(BROAD_ETHNIC_GROUP.values()))
NHS_CATEGORIES = tuple(
    dict.fromkeys(
        f"{c} {t}" if BROAD_ETHNIC_GROUP[c] != UNKNOWN_ETHNICITY else UNKNOWN_ETHNICITY
        for c, t in ETHNIC_CATEGORIES.items()
    )
)

STANDARD_GROUPINGS = [
    Grouping("ethnicity_broad", "Ethnicity (broad group)", "ethnicity_broad", expected=BROAD_GROUPS),
    Grouping("ethnicity", "Ethnicity (NHS ethnic category)", "ethnicity", expected=NHS_CATEGORIES),
    Grouping("imd_quintile", "Deprivation (IMD quintile)", "imd_quintile", expected=tuple(QUINTILES.values())),
    Grouping("core20", "Core20 (most deprived 20% of areas) vs the rest", "core20", expected=(CORE20, REST)),
    Grouping("ethnicity_x_deprivation", "Ethnicity x deprivation", "ethnicity_x_deprivation"),
    Grouping("sex", "Sex", "sex_label", stratum="age_band"),
    # a risk-based policy is meant to flag more older people: by age only calibration is judged
    Grouping("age_band", "Age band", "age_band", stratum="sex_label", judged=("predicted_to_observed",)),
]

STANDARD_COVERAGE = [
    CoverageMeasure("ethnicity_recorded", "Share with ethnicity recorded (not Z/99)", "ethnicity_recorded"),
    CoverageMeasure("imd_linked", "Share linked to an IMD decile (postcode to LSOA)", "imd_linked"),
    CoverageMeasure("gp_coded_conditions", "Long-term conditions coded by the GP, per person", "gp_coded_conditions"),
    CoverageMeasure(
        "hospital_coded_conditions",
        "Long-term conditions recorded in hospital data, per person",
        "hospital_coded_conditions",
    ),
    CoverageMeasure(
        "gp_coding_completeness",
        "Of conditions recorded in hospital, share also coded by the GP",
        "conditions_in_both/hospital_coded_conditions",
        kind="ratio",
    ),
    CoverageMeasure("contacts_12m", "Hospital and community contacts recorded per person (12 months)", "contacts_12m"),
]

CONTACT_COLUMNS = (
    "emergency_admissions_12m",
    "elective_admissions_12m",
    "ae_attendances_12m",
    "outpatient_attendances_12m",
    "community_contacts_12m",
    "mh_contacts_12m",
)
KEEP = ("person_id", "index_date", "practice_code", "ethnic_category", "imd_decile", "sex", "age", "age_band")
# need that does not depend on service use (need at equal score), and GP prescribing (the thin-record grouping)
NEED_COLUMNS = ("frailty_deficits", "died_in_follow_up", "medicine_classes_12m")


def audit_frame(features: pd.DataFrame, label: str, risk: np.ndarray) -> pd.DataFrame:
    """What a model audit needs from a validation feature table: outcome, risk, group attributes and
    coverage counts (no other predictors). Logged with the model version as validation scores."""
    out = features[[c for c in (*KEEP, *NEED_COLUMNS) if c in features]].copy()
    out["outcome"] = features[label].astype("int8").to_numpy()
    out["risk"] = np.asarray(risk, dtype="float64")
    gp = [c for c in features if c.startswith("ltc_") and c.endswith("_gp")]
    hosp = [c[:-3] + "_hosp" for c in gp if c[:-3] + "_hosp" in features]
    gp = [c[:-5] + "_gp" for c in hosp]
    if gp:
        g = features[gp].fillna(0).to_numpy() > 0
        h = features[hosp].fillna(0).to_numpy() > 0
        out["gp_coded_conditions"] = g.sum(1).astype("int16")
        out["hospital_coded_conditions"] = h.sum(1).astype("int16")
        out["conditions_in_both"] = (g & h).sum(1).astype("int16")
    contacts = [c for c in CONTACT_COLUMNS if c in features]
    if contacts:
        out["contacts_12m"] = features[contacts].fillna(0).sum(axis=1).astype("float32")
    return out


def standard_labels(scored: pd.DataFrame) -> pd.DataFrame:
    """Add the standard group label columns and the age-sex stratum to a model's scored table."""
    out = scored.copy()
    code = out["ethnic_category"].astype("string").fillna("99")
    broad = code.map(BROAD_ETHNIC_GROUP).fillna(UNKNOWN_ETHNICITY)
    out["ethnicity_broad"] = broad
    out["ethnicity"] = np.where(
        broad == UNKNOWN_ETHNICITY, UNKNOWN_ETHNICITY, code + " " + code.map(ETHNIC_CATEGORIES).fillna("").astype(str)
    )
    decile = pd.to_numeric(out["imd_decile"], errors="coerce")
    quintile = np.ceil(decile / 2)
    out["imd_quintile"] = quintile.map(QUINTILES).fillna(NO_IMD)
    out["core20"] = np.where(decile.isna(), NO_IMD, np.where(decile <= 2, CORE20, REST))
    dep = np.where(decile.isna(), "IMD unknown", np.where(decile <= 2, "Core20", "rest of population"))
    out["ethnicity_x_deprivation"] = broad.astype(str) + ", " + dep
    sex = out["sex"].astype("string").fillna("U")
    out["sex_label"] = sex.map(SEX_CODES).fillna(sex)
    out["age_band"] = out["age_band"].astype("string").fillna("unknown")
    out["stratum"] = out["age_band"].astype(str) + " " + out["sex_label"].astype(str)
    out["ethnicity_recorded"] = (broad != UNKNOWN_ETHNICITY).astype(float)
    out["imd_linked"] = decile.notna().astype(float)
    return out


def coverage_table(frame: pd.DataFrame, column: str, measures: list[CoverageMeasure]) -> list[dict]:
    """Coverage measures by group (one row per group)."""
    usable = [m for m in measures if all(c in frame for c in m.column.split("/"))]
    if not usable:
        return []
    grouped = frame.groupby(column, observed=True, sort=True)
    rows = []
    for group, part in grouped:
        row: dict = {"group": str(group), "n": int(len(part))}
        for m in usable:
            if m.kind == "ratio":
                num, den = m.column.split("/")
                d = float(part[den].sum())
                row[m.name] = float(part[num].sum()) / d if d else None
            else:
                row[m.name] = float(part[m.column].mean())
        rows.append(row)
    return rows


def coverage_descriptions(frame: pd.DataFrame, measures: list[CoverageMeasure]) -> dict[str, str]:
    return {m.name: m.description for m in measures if all(c in frame for c in m.column.split("/"))}
