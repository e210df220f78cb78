"""OMOP CDM v5.4 extracts (tables as CSV or Parquet, lower-case CDM column names) mapped onto the linked
data model. Rows of any table whose `person_id` is not in `person` are quarantined as `unknown_person`.
Every staged row names the OMOP file and row it came from (practices and sites: their care site's row), so
the loader's quarantine points at the OMOP row to fix.

| OMOP | PHM extract | rule |
| --- | --- | --- |
| person (required) | patients | surrogate NHS number per `person_id` (sorted); `year_of_birth`, `month_of_birth` (else from `birth_datetime`, else month 7); `gender_concept_id` 8507 M, 8532 F (else `gender_source_value` M/F, else U); race concept or `race_source_value` (an NHS code in `ethnicity_source_value` wins) -> ethnic category; LSOA from the person's location; registered from `observation_period` start, else first visit, else birth (never before the birth month); no registration end |
| death | patients | earliest `death_date` |
| location | patients, practices | `location_source_value` or `zip` when an LSOA (`E01...`/`W01...`) -> lsoa11, else unknown; `city` -> place |
| care_site (the person's) | practices | each care site -> practice `Y00001`... (sorted ids), none -> `Y99999`; PCN per location (the care site's, else its patients' most common) `U00002`..., unknown `U00001`; ICB unknown |
| visit_occurrence (required) 9203 ER | ae_attendances | arrival/departure = visit start/end datetime (else date); acuity unknown |
| 9201 IP | apc_spells | `21` when admitted from ER (8870) or an ER visit of the person began the same or previous day, else `11`; primary diagnosis = first ICD-10 `condition_source_value` of the visit (by id, 4 characters) |
| 262 ER and IP | ae_attendances + apc_spells | both; admission method `21` |
| 9202 OP | op_appointments | attended |
| 581476 home | community_contacts | district nursing |
| 581477 office, 38004207 ambulatory | - | primary care visits: counted, not mapped |
| other visit concepts | quarantine | `unmapped_code` (`visit_source_value` text such as "ER"/"Inpatient Visit" is used when the concept is unknown) |
| care_site (of ER/IP visits) | sites | `RZZ01`... (sorted ids), none -> `RZZ99`; beds = highest midnight census of inpatient spells (at least 1) |
| condition_occurrence | gp_events | SNOMED or ICD-10 `condition_source_value`, else standard concept -> the condition's SNOMED code; other SNOMED codes kept; other ICD-10 codes serve only as admission diagnoses; else quarantined |
| drug_exposure | prescriptions | `drug_source_value` (medicine name) -> BNF substance; unmapped quarantined |
| measurement, observation | gp_events | concept 3004249 systolic BP, 3038553 BMI, or a SNOMED source value; `value_as_number` kept; ids prefixed `m`/`o`; other rows unused |
| imd (optional, PHM layout) | imd | passed through, so LSOAs from `location` link to deprivation |

The mapping lives in `people` (persons, practices), `visits` (visit kinds, hospital sites, A&E, spells,
outpatients, home visits) and `events` (conditions, drugs, measurements); `columns` reads the CDM tables.
"""

from __future__ import annotations

from pathlib import Path

from features.sources.formats.common import ConversionReport, Staging, surrogate_nhs_numbers
from features.sources.formats.omop import columns as oc
from features.sources.formats.omop.events import stage_conditions, stage_drugs, stage_measures
from features.sources.formats.omop.people import map_patients, map_practices
from features.sources.formats.omop.visits import primary_diagnoses, stage_sites, stage_visit_tables, visit_kinds


def convert(src: Path, out: Path) -> ConversionReport:
    """Map the OMOP folder `src` into a staged folder of PHM extracts at `out`."""
    report = ConversionReport(format="omop", source=str(src), staged=str(out), synthetic=False)
    stage = Staging(report)
    person = oc.read(src, "person", True, report, ["person_id"])
    visits = oc.read(
        src,
        "visit_occurrence",
        True,
        report,
        ["visit_occurrence_id", "person_id", "visit_concept_id", "visit_start_date"],
    )
    optional = {
        "condition_occurrence": ["condition_occurrence_id", "person_id", "condition_start_date"],
        "drug_exposure": ["drug_exposure_id", "person_id", "drug_exposure_start_date"],
        "measurement": ["measurement_id", "person_id", "measurement_date"],
        "observation": ["observation_id", "person_id", "observation_date"],
        "death": ["person_id", "death_date"],
        "location": ["location_id"],
        "care_site": ["care_site_id"],
        "observation_period": ["person_id", "observation_period_start_date"],
        "imd": [],
    }
    tables = {stem: oc.read(src, stem, False, report, cols) for stem, cols in optional.items()}

    no_id = person["person_id"].isna()
    stage.reject(person[no_id], "missing_value", "person_id", "person")
    person = person[~no_id]
    numbers = surrogate_nhs_numbers(person["person_id"].tolist())
    for stem, frame in [("visit_occurrence", visits), *tables.items()]:
        if frame is not None and "person_id" in frame:
            tables[stem] = oc.known(stage, frame, numbers, stem)
    visits = tables.pop("visit_occurrence")

    practices, practice_of = map_practices(person, tables["care_site"], tables["location"], report)
    stage.add("practices", practices, tables["care_site"])
    stage.add("patients", map_patients(stage, person, numbers, practice_of, visits, tables, report), person)
    visits = visit_kinds(stage, visits, report)
    if tables["imd"] is not None:  # the loader checks it against the imd contract
        stage.add("imd", tables["imd"], tables["imd"])
    site_of = stage_sites(stage, visits, tables["care_site"], report)
    stage_visit_tables(stage, visits, numbers, site_of, primary_diagnoses(tables["condition_occurrence"]), report)
    stage_conditions(stage, tables["condition_occurrence"], numbers)
    stage_drugs(stage, tables["drug_exposure"], numbers)
    for stem, prefix in (("measurement", "m"), ("observation", "o")):
        stage_measures(stage, tables[stem], stem, prefix, numbers, report)
    return stage.write(out)
