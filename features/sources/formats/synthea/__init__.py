"""Synthea CSV exports (the current layout: `Id`, `START`, `STOP`, `PATIENT`, `ENCOUNTERCLASS`, ...) mapped
onto the linked data model.

| Synthea | PHM extract | rule |
| --- | --- | --- |
| patients.csv (required) | patients | surrogate NHS number per `Id`; `BIRTHDATE` -> year/month; `GENDER`; `RACE` -> NHS ethnic category (white C, black P, asian L, native/hawaiian/other S, absent Z); `DEATHDATE`; registered from birth |
| (practice) | practices | each patient's most used organisation for wellness/ambulatory/virtual encounters -> practice `Y00001`...; none -> `Y99999`; PCN by the organisation's city |
| `INCOME` | imd | no LSOA in Synthea: income deciles within the export are a deprivation proxy (proxy areas `E01990001`-`E01990010`, not real LSOAs) |
| encounters.csv (required) `inpatient` | apc_spells | emergency (`21`) when the encounter code is 183452005 or an emergency/urgent care encounter began in the 24 h before; else elective (`11`); `REASONCODE` -> ICD-10 via the condition map |
| `emergency`, `urgentcare` | ae_attendances | arrival `START`, departure `STOP` |
| `outpatient` | op_appointments | attended |
| `wellness`, `ambulatory`, `virtual` | gp_events | a consultation coded with the encounter's SNOMED code |
| `home`, `hospice`, `snf` | community_contacts, social_care | district nursing, palliative care, nursing care package |
| (hospital organisations) | sites | `RS...` codes; beds estimated from the highest midnight census seen |
| conditions.csv | gp_events | SNOMED codes of the long-term conditions -> the features' codes; other SNOMED codes kept; others quarantined |
| medications.csv | prescriptions | medicine name -> BNF substance, an issue every 28 days from `START` to `STOP` (or the export's end), none after the patient's `DEATHDATE` or the export's end; unmapped medicines quarantined |
| observations.csv | gp_events | systolic blood pressure, BMI (with values) and current smoking; other observations unused |
| procedures.csv | - | read and counted; no predictor uses them |

Every staged row names the source file and row it came from (see `formats.common`); an issue the mapping
derives from a medications.csv row names that row.

The mapping lives in `organisations` (practices, hospital sites, the deprivation proxy), `encounters` (A&E,
spells, outpatients, community, social care, primary care consultations) and `events` (conditions,
medications, observations).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.sources.formats.common import ConversionReport, Staging, column, read_source, surrogate_nhs_numbers
from features.sources.formats.synthea.encounters import PRIMARY_CARE, stage_encounter_tables
from features.sources.formats.synthea.events import known_rows, stage_conditions, stage_medications, stage_observations
from features.sources.formats.synthea.organisations import deprivation_proxy, map_practices, map_sites
from features.sources.formats.vocab import ethnic_category


def convert(src: Path, out: Path) -> ConversionReport:
    report = ConversionReport(format="synthea", source=str(src), staged=str(out), synthetic=True)
    stage = Staging(report)
    patients = read_source(src, "patients", True, report, ["Id", "BIRTHDATE", "GENDER"])
    encounters = read_source(src, "encounters", True, report, ["Id", "START", "PATIENT", "ENCOUNTERCLASS"])
    orgs = read_source(src, "organizations", False, report, ["Id"])
    numbers = surrogate_nhs_numbers(patients["Id"].dropna().tolist())
    encounters = known_rows(stage, encounters, numbers, "encounters")
    encounters["cls"] = encounters["ENCOUNTERCLASS"].str.strip().str.lower()
    encounters["start"] = pd.to_datetime(
        encounters["START"], errors="coerce", utc=True, format="ISO8601"
    ).dt.tz_localize(None)
    encounters["stop"] = pd.to_datetime(
        column(encounters, "STOP"), errors="coerce", utc=True, format="ISO8601"
    ).dt.tz_localize(None)
    bad = encounters["start"].isna()
    stage.reject(encounters[bad], "wrong_type", "START", "encounters")
    encounters = encounters[~bad]
    known_classes = {"inpatient", "emergency", "urgentcare", "outpatient", "home", "hospice", "snf", *PRIMARY_CARE}
    odd = ~encounters["cls"].isin(known_classes)
    stage.reject(encounters[odd], "unmapped_code", "ENCOUNTERCLASS", "encounters")
    encounters = encounters[~odd]
    end = encounters["stop"].max() if encounters["stop"].notna().any() else encounters["start"].max()

    practices, practice_of = map_practices(encounters, orgs, patients, report)
    stage.add("practices", practices, orgs)
    sites, site_of = map_sites(encounters, orgs, report)
    stage.add("sites", sites, orgs)
    imd, lsoa = deprivation_proxy(patients, report)
    if imd is not None:
        stage.add("imd", imd)
    birth = pd.to_datetime(patients["BIRTHDATE"], errors="coerce")
    death = pd.to_datetime(column(patients, "DEATHDATE"), errors="coerce")
    gender = patients["GENDER"].str.strip().str.upper()
    stage.add(
        "patients",
        pd.DataFrame(
            {
                "nhs_number": patients["Id"].map(numbers),
                "year_of_birth": birth.dt.year.astype("Int64").astype("string"),
                "month_of_birth": birth.dt.month.astype("Int64").astype("string"),
                "sex": gender.where(gender.isin(["M", "F"]), "U"),
                "ethnic_category": [ethnic_category(r) for r in column(patients, "RACE")],
                "lsoa11": lsoa,
                "practice_code": patients["Id"].map(practice_of).fillna("Y99999"),
                "registration_start": birth.dt.strftime("%Y-%m-%d"),
                "registration_end": None,
                "date_of_death": death.dt.strftime("%Y-%m-%d"),
            }
        ),
        patients,
    )
    stage_encounter_tables(stage, encounters, numbers, site_of)
    stage_conditions(stage, src, report, numbers)
    stage_medications(stage, src, report, numbers, end, pd.Series(death.to_numpy(), index=patients["Id"].to_numpy()))
    stage_observations(stage, src, report, numbers)
    procedures = read_source(src, "procedures", False, report)
    if procedures is not None:
        report.notes.append(f"{len(procedures):,} procedure rows read and not used: no predictor reads procedures.")
    return stage.write(out)
