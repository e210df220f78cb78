"""OMOP clinical events mapped to GP events and prescriptions: conditions (SNOMED, ICD-10 or standard
concept -> the features' codes), drugs (medicine name -> BNF), measurements and observations the
predictors read."""

from __future__ import annotations

import pandas as pd

from features.sources.formats.common import ConversionReport, Staging
from features.sources.formats.common import column as _col
from features.sources.formats.omop import columns as oc
from features.sources.formats.vocab import (
    CONDITION_SNOMED,
    bnf_for_name,
    condition_for_icd10,
    condition_for_snomed,
)

CONDITION_CONCEPTS = {  # OMOP standard condition concepts -> condition key
    "320128": "hypertension",
    "201826": "diabetes",
    "201820": "diabetes",
    "201254": "diabetes",
    "317009": "asthma",
    "255573": "copd",
    "316139": "heart_failure",
    "319835": "heart_failure",
    "313217": "atrial_fibrillation",
    "46271022": "ckd",
    "381316": "stroke",
    "4182210": "dementia",
    "378419": "dementia",
    "440383": "depression",
    "4185932": "chd",
    "4329847": "chd",
}
OBSERVATION_CONCEPTS = {"3004249": "271649006", "3038553": "60621009"}  # systolic BP, BMI
SNOMED = r"[0-9]{6,18}"
ICD10_LIKE = r"[A-Z][0-9]{2}[0-9A-Z]{0,5}"


def stage_conditions(stage: Staging, frame: pd.DataFrame | None, numbers: dict[str, str]) -> None:
    if frame is None:
        return
    raw = _col(frame, "condition_source_value")
    clean = raw.str.upper().str.replace(".", "", regex=False)
    key = (
        oc.mapped(raw, condition_for_snomed)
        .fillna(oc.mapped(clean.where(oc.is_(clean, ICD10_LIKE)), condition_for_icd10))
        .fillna(oc.map_(_col(frame, "condition_concept_id"), CONDITION_CONCEPTS))
    )
    code = oc.map_(key, CONDITION_SNOMED).fillna(raw.where(oc.is_(raw, SNOMED)))
    hospital = code.isna() & oc.is_(clean, ICD10_LIKE)  # other ICD-10 diagnoses: admission diagnoses, not GP events
    if hospital.any():
        stage.report.notes.append(
            f"{int(hospital.sum()):,} ICD-10 condition row(s) outside the long-term conditions "
            "are used only as admission diagnoses."
        )
    stage.reject(frame[code.isna() & ~hospital], "unmapped_code", "condition_source_value", "condition_occurrence")
    ok = code.notna()
    stage.add(
        "gp_events",
        oc.frame(
            event_id=frame["condition_occurrence_id"][ok],
            nhs_number=oc.map_(frame["person_id"][ok], numbers),
            event_date=oc.day(frame["condition_start_date"][ok]),
            code_system="SNOMED",
            code=code[ok],
            value=pd.NA,
        ),
        frame,
    )


def stage_drugs(stage: Staging, frame: pd.DataFrame | None, numbers: dict[str, str]) -> None:
    if frame is None:
        return
    bnf = oc.mapped(_col(frame, "drug_source_value"), bnf_for_name)
    stage.reject(frame[bnf.isna()], "unmapped_code", "drug_source_value", "drug_exposure")
    ok = bnf.notna()
    stage.add(
        "prescriptions",
        oc.frame(
            prescription_id=frame["drug_exposure_id"][ok],
            nhs_number=oc.map_(frame["person_id"][ok], numbers),
            issue_date=oc.day(frame["drug_exposure_start_date"][ok]),
            bnf_code=bnf[ok],
        ),
        frame,
    )


def stage_measures(
    stage: Staging,
    frame: pd.DataFrame | None,
    table: str,
    prefix: str,
    numbers: dict[str, str],
    report: ConversionReport,
) -> None:
    """Measurements or observations with a code the features read (concept map, else a SNOMED source value)."""
    if frame is None:
        return
    source = _col(frame, f"{table}_source_value")
    code = oc.map_(_col(frame, f"{table}_concept_id"), OBSERVATION_CONCEPTS).fillna(
        source.where(oc.is_(source, SNOMED))
    )
    ok = code.notna()
    if (~ok).any():
        report.notes.append(f"{int((~ok).sum()):,} {table} rows not used: no predictor reads them.")
    stage.add(
        "gp_events",
        oc.frame(
            event_id=prefix + frame[f"{table}_id"][ok],
            nhs_number=oc.map_(frame["person_id"][ok], numbers),
            event_date=oc.day(frame[f"{table}_date"][ok]),
            code_system="SNOMED",
            code=code[ok],
            value=_col(frame, "value_as_number")[ok],
        ),
        frame,
    )
