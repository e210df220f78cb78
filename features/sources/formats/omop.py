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
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.sources import codes
from features.sources.formats.common import ConversionReport, FormatError, Staging, surrogate_nhs_numbers
from features.sources.formats import omop_columns as oc
from features.sources.formats.omop_columns import TS
from features.sources.formats.common import column as _col
from features.sources.formats.vocab import (CONDITION_SNOMED, bnf_for_name, condition_for_icd10,
                                            condition_for_snomed, ethnic_category)

GENDER = {"8507": "M", "8532": "F"}
VISIT_KIND = {"9203": "er", "9201": "ip", "262": "erip", "9202": "op", "581476": "home",
              "581477": "primary", "38004207": "primary"}
VISIT_TEXT = {"er": "9203", "emergency": "9203", "emergency room visit": "9203", "ip": "9201", "inpatient": "9201",
              "inpatient visit": "9201", "erip": "262", "er and inpatient visit": "262",
              "emergency room and inpatient visit": "262", "op": "9202", "outpatient": "9202",
              "outpatient visit": "9202", "home visit": "581476", "office visit": "581477",
              "ambulatory clinic / center": "38004207"}
ER_ADMITTED_FROM = "8870"  # Emergency Room (admitted_from_concept_id)
CONDITION_CONCEPTS = {  # OMOP standard condition concepts -> condition key
    "320128": "hypertension", "201826": "diabetes", "201820": "diabetes", "201254": "diabetes",
    "317009": "asthma", "255573": "copd", "316139": "heart_failure", "319835": "heart_failure",
    "313217": "atrial_fibrillation", "46271022": "ckd", "381316": "stroke", "4182210": "dementia",
    "378419": "dementia", "440383": "depression", "4185932": "chd", "4329847": "chd"}
OBSERVATION_CONCEPTS = {"3004249": "271649006", "3038553": "60621009"}  # systolic BP, BMI
SNOMED = r"[0-9]{6,18}"
ICD10_LIKE = r"[A-Z][0-9]{2}[0-9A-Z]{0,5}"
NO_PRACTICE, NO_PCN, NO_SITE = "Y99999", "U00001", "RZZ99"
SITE_CODES = [code for c in "ZYXWVUTSRQPONMLKJIHGFEDCBA" for n in range(1, 100) if (code := f"RZ{c}{n:02d}") != NO_SITE]


def convert(src: Path, out: Path) -> ConversionReport:
    """Map the OMOP folder `src` into a staged folder of PHM extracts at `out`."""
    report = ConversionReport(format="omop", source=str(src), staged=str(out), synthetic=False)
    stage = Staging(report)
    person = oc.read(src, "person", True, report, ["person_id"])
    visits = oc.read(src, "visit_occurrence", True, report,
                   ["visit_occurrence_id", "person_id", "visit_concept_id", "visit_start_date"])
    optional = {
        "condition_occurrence": ["condition_occurrence_id", "person_id", "condition_start_date"],
        "drug_exposure": ["drug_exposure_id", "person_id", "drug_exposure_start_date"],
        "measurement": ["measurement_id", "person_id", "measurement_date"],
        "observation": ["observation_id", "person_id", "observation_date"],
        "death": ["person_id", "death_date"], "location": ["location_id"], "care_site": ["care_site_id"],
        "observation_period": ["person_id", "observation_period_start_date"], "imd": []}
    tables = {stem: oc.read(src, stem, False, report, cols) for stem, cols in optional.items()}

    no_id = person["person_id"].isna()
    stage.reject(person[no_id], "missing_value", "person_id", "person")
    person = person[~no_id]
    numbers = surrogate_nhs_numbers(person["person_id"].tolist())
    for stem, frame in [("visit_occurrence", visits), *tables.items()]:
        if frame is not None and "person_id" in frame:
            tables[stem] = oc.known(stage, frame, numbers, stem)
    visits = tables.pop("visit_occurrence")

    practices, practice_of = _practices(person, tables["care_site"], tables["location"], report)
    stage.add("practices", practices, tables["care_site"])
    stage.add("patients", _patients(stage, person, numbers, practice_of, visits, tables, report), person)
    visits = _visit_kinds(stage, visits, report)
    if tables["imd"] is not None:  # the loader checks it against the imd contract
        stage.add("imd", tables["imd"], tables["imd"])
    site_of = _sites(stage, visits, tables["care_site"], report)
    _visit_tables(stage, visits, numbers, site_of, _diagnoses(tables["condition_occurrence"]), report)
    _conditions(stage, tables["condition_occurrence"], numbers)
    _drugs(stage, tables["drug_exposure"], numbers)
    for stem, prefix in (("measurement", "m"), ("observation", "o")):
        _measures(stage, tables[stem], stem, prefix, numbers, report)
    return stage.write(out)


# ---- people and practices --------------------------------------------------------------------
def _practices(person: pd.DataFrame, care_sites: pd.DataFrame | None, locations: pd.DataFrame | None,
               report: ConversionReport) -> tuple[pd.DataFrame, pd.Series]:
    site = _col(person, "care_site_id")
    ids = oc.natural(site.dropna())
    if len(ids) > 99_998:
        raise FormatError("person: more than 99,998 distinct care sites cannot be numbered as practices")
    code = {cs: f"Y{i + 1:05d}" for i, cs in enumerate(ids)}
    practice_of = oc.map_(site, code).fillna(NO_PRACTICE)
    usual = (pd.DataFrame({"p": practice_of, "l": _col(person, "location_id")}).dropna()
             .groupby(["p", "l"]).size().reset_index(name="n")
             .sort_values(["p", "n", "l"], ascending=[True, False, True]).drop_duplicates("p").set_index("p")["l"])
    frame = pd.DataFrame({"practice_code": sorted(practice_of.unique())})
    care_site = oc.map_(frame["practice_code"], {v: k for k, v in code.items()})
    location = (oc.map_(care_site, oc.lookup(care_sites, "care_site_id", "location_id"))
                .fillna(oc.map_(frame["practice_code"], usual)))
    pcn = {loc: f"U{i + 2:05d}" for i, loc in enumerate(oc.natural(location.dropna()))}
    frame["pcn_code"] = oc.map_(location, pcn).fillna(NO_PCN)
    frame["place"] = oc.map_(location, oc.lookup(locations, "location_id", "city")).fillna("")
    frame["icb_code"] = ""
    frame.index = oc.rows_of(care_sites, care_site)
    report.notes.append("Practices are the persons' care sites (Y00001... in care_site_id order); PCNs group "
                        f"practices by location (U00002..., unknown {NO_PCN}); place is the location's city; "
                        "ICB unknown.")
    if (practice_of == NO_PRACTICE).any():
        report.notes.append(f"{int((practice_of == NO_PRACTICE).sum()):,} person(s) without a care site: "
                            f"registered with practice {NO_PRACTICE}.")
    return frame.astype("string"), practice_of


def _patients(stage: Staging, person: pd.DataFrame, numbers: dict[str, str], practice_of: pd.Series,
              visits: pd.DataFrame, tables: dict[str, pd.DataFrame | None], report: ConversionReport) -> pd.DataFrame:
    pid = person["person_id"]
    born = oc.when(_col(person, "birth_datetime"))
    year = _col(person, "year_of_birth").fillna(born.dt.year.astype("Int64").astype("string"))
    month = _col(person, "month_of_birth").fillna(born.dt.month.astype("Int64").astype("string"))
    if month.isna().any():
        report.notes.append(f"{int(month.isna().sum()):,} person(s) without a month of birth: July (7) assumed.")
        month = month.fillna("7")
    y, m = pd.to_numeric(year, errors="coerce").astype("Int64"), pd.to_numeric(month, errors="coerce").astype("Int64")
    birth = pd.to_datetime(y.astype("string") + "-" + m.astype("string").str.zfill(2) + "-01", errors="coerce")

    source_sex = _col(person, "gender_source_value").str.upper().str[:1]
    sex = (oc.map_(_col(person, "gender_concept_id"), GENDER)
           .fillna(source_sex.where(source_sex.isin(["M", "F"]))).fillna("U"))
    race = _col(person, "race_concept_id").astype(object).where(lambda r: r.notna(), None)
    race_text = _col(person, "race_source_value").astype(object).where(lambda r: r.notna(), None)
    eth_text = _col(person, "ethnicity_source_value").astype(object).where(lambda r: r.notna(), None)
    combos = {k: (ethnic_category(k[0], k[2]) if ethnic_category(k[0], k[2]) != "Z" else ethnic_category(k[1], k[2]))
              for k in set(zip(race, race_text, eth_text))}
    ethnic = [combos[k] for k in zip(race, race_text, eth_text)]

    locations = tables["location"]
    lsoa = pd.Series(pd.NA, index=pid.index, dtype="string")
    for column in ("location_source_value", "zip"):
        value = oc.map_(_col(person, "location_id"), oc.lookup(locations, "location_id", column)).str.upper()
        lsoa = lsoa.fillna(value.where(oc.is_(value, codes.LSOA_PATTERN.strip("^$"))))
    report.notes.append(f"{int(lsoa.notna().sum()):,} of {len(pid):,} person(s) have an LSOA from their location. "
                        "IMD linked only where the location gives an LSOA; otherwise deprivation is unknown.")

    start = oc.when(oc.map_(pid, oc.earliest(tables["observation_period"], "observation_period_start_date")))
    from_visit = start.isna()
    start = start.fillna(oc.when(oc.map_(pid, oc.earliest(visits, "visit_start_date"))))
    from_birth = start.isna()
    early = start.notna() & birth.notna() & (start < birth)
    start = start.fillna(birth).mask(early, birth)
    report.notes.append(
        "Registration start is the first observation period start"
        f" ({int((~from_visit).sum()):,}), else the first visit ({int((from_visit & ~from_birth).sum()):,}), else "
        f"the birth month ({int(from_birth.sum()):,}); registration end unknown."
        + (f" {int(early.sum()):,} registration(s) before the birth month moved up to it." if early.any() else ""))

    death = tables["death"]
    if death is not None:
        stage.reject(death[oc.when(death["death_date"]).isna()], "wrong_type", "death_date", "death")
    return oc.frame(nhs_number=oc.map_(pid, numbers), year_of_birth=year, month_of_birth=month, sex=sex,
                  ethnic_category=pd.Series(ethnic, index=pid.index), lsoa11=lsoa, practice_code=practice_of,
                  registration_start=start.dt.strftime("%Y-%m-%d"), registration_end=pd.NA,
                  date_of_death=oc.map_(pid, oc.earliest(death, "death_date")))


# ---- visits ----------------------------------------------------------------------------------
def _visit_kinds(stage: Staging, visits: pd.DataFrame, report: ConversionReport) -> pd.DataFrame:
    """Visits with a known kind and start date (others quarantined), with `_kind` and `_start` added."""
    text = oc.map_(_col(visits, "visit_source_value").str.lower(), VISIT_TEXT)
    kind = oc.map_(visits["visit_concept_id"], VISIT_KIND).fillna(oc.map_(text, VISIT_KIND))
    start = oc.when(visits["visit_start_date"]).dt.normalize()
    stage.reject(visits[kind.isna()], "unmapped_code", "visit_concept_id", "visit_occurrence")
    stage.reject(visits[kind.notna() & start.isna()], "wrong_type", "visit_start_date", "visit_occurrence")
    primary = int((kind == "primary").sum())
    if primary:
        report.notes.append(f"{primary:,} visit(s) not mapped: primary care visits (Office Visit, Ambulatory clinic).")
    keep = kind.notna() & start.notna()
    return visits[keep].assign(_kind=kind[keep], _start=start[keep])


def _sites(stage: Staging, visits: pd.DataFrame, care_sites: pd.DataFrame | None,
           report: ConversionReport) -> pd.Series:
    """Stage `sites` for the care sites of ER and inpatient visits; returns each such visit's site code."""
    hospital = visits[visits["_kind"].isin(["er", "ip", "erip"])]
    care_site = _col(hospital, "care_site_id")
    ids = oc.natural(care_site.dropna())
    if len(ids) > len(SITE_CODES):
        raise FormatError(f"visit_occurrence: more than {len(SITE_CODES):,} hospital care sites cannot be numbered")
    code = dict(zip(ids, SITE_CODES))
    site_of = oc.map_(care_site, code).fillna(NO_SITE)
    spells = hospital["_kind"] != "er"
    start, end = hospital["_start"][spells], oc.when(_col(hospital, "visit_end_date")[spells]).dt.normalize()
    ok = end.isna() | (end >= start)
    events = pd.concat([pd.DataFrame({"site": site_of[spells][ok], "day": start[ok], "n": 1}),
                        pd.DataFrame({"site": site_of[spells][ok & end.notna()], "day": end[ok & end.notna()],
                                      "n": -1})])
    census = events.groupby(["site", "day"])["n"].sum().groupby(level=0).cumsum().groupby(level=0).max()
    sites = pd.DataFrame({"site_code": sorted(site_of.unique())})
    sites["site_name"] = oc.map_(oc.map_(sites["site_code"], {v: k for k, v in code.items()}),
                              oc.lookup(care_sites, "care_site_id", "care_site_name")).fillna("")
    sites["ga_beds"] = pd.to_numeric(sites["site_code"].map(census)).fillna(0).clip(lower=1).astype(int).astype(str)
    sites["critical_care_beds"] = pd.NA
    sites.index = oc.rows_of(care_sites, oc.map_(sites["site_code"], {v: k for k, v in code.items()}))
    stage.add("sites", sites.astype("string"), care_sites)
    if len(sites):
        report.notes.append("Hospital sites are the care sites of ER and inpatient visits (RZZ01...); bed numbers are "
                            "estimated from observed occupancy (highest midnight census of inpatient visits, at least "
                            "1); critical care beds unknown.")
    if (site_of == NO_SITE).any():
        report.notes.append(f"{int((site_of == NO_SITE).sum()):,} ER/inpatient visit(s) without a care site: "
                            f"site {NO_SITE}.")
    return site_of


def _diagnoses(conditions: pd.DataFrame | None) -> pd.Series:
    """Visit id -> ICD-10 primary diagnosis: the visit's first ICD-10 condition (by condition_occurrence_id)."""
    if conditions is None or "visit_occurrence_id" not in conditions:
        return pd.Series(dtype="string")
    code = _col(conditions, "condition_source_value").str.upper().str.replace(".", "", regex=False)
    dx = code.str[:4]
    ok = oc.is_(code, ICD10_LIKE) & oc.is_(dx, codes.ICD10_PATTERN.strip("^$")) & conditions["visit_occurrence_id"].notna()
    rows = pd.DataFrame({"visit": conditions["visit_occurrence_id"], "dx": dx,
                         "n": pd.to_numeric(conditions["condition_occurrence_id"], errors="coerce"),
                         "id": conditions["condition_occurrence_id"]})[ok]
    return rows.sort_values(["n", "id"]).drop_duplicates("visit").set_index("visit")["dx"]


def _visit_tables(stage: Staging, visits: pd.DataFrame, numbers: dict[str, str], site_of: pd.Series,
                  diagnoses: pd.Series, report: ConversionReport) -> None:
    kind, vid, nhs = visits["_kind"], visits["visit_occurrence_id"], oc.map_(visits["person_id"], numbers)
    day = visits["_start"].dt.strftime("%Y-%m-%d")
    end_day = oc.day(_col(visits, "visit_end_date"))

    er = visits[kind.isin(["er", "erip"])]
    arrival = oc.when(_col(er, "visit_start_datetime")).fillna(er["_start"])
    departure = oc.when(_col(er, "visit_end_datetime"))
    by_date = oc.when(_col(er, "visit_end_date"))
    departure = departure.fillna(by_date.where(by_date >= arrival))  # a date alone before arrival: unknown
    stage.add("ae_attendances", oc.frame(attendance_id=er["visit_occurrence_id"], nhs_number=nhs[er.index],
                                       arrival_time=arrival.dt.strftime(TS), departure_time=departure.dt.strftime(TS),
                                       site_code=site_of[er.index]), visits)

    ip = visits[kind.isin(["ip", "erip"])]
    pairs = ip[["visit_occurrence_id", "person_id", "_start"]].merge(
        er[["person_id", "_start"]].rename(columns={"_start": "er_start"}), on="person_id")
    after_er = pairs.loc[(pairs["_start"] - pairs["er_start"]).dt.days.between(0, 1), "visit_occurrence_id"]
    emergency = ((ip["_kind"] == "erip") | (_col(ip, "admitted_from_concept_id") == ER_ADMITTED_FROM).fillna(False)
                 | ip["visit_occurrence_id"].isin(after_er))
    stage.add("apc_spells", oc.frame(spell_id=ip["visit_occurrence_id"], nhs_number=nhs[ip.index],
                                   admission_date=day[ip.index], discharge_date=end_day[ip.index],
                                   admission_method=pd.Series(np.where(emergency, "21", "11"), index=ip.index),
                                   primary_diagnosis=oc.map_(ip["visit_occurrence_id"], diagnoses),
                                   site_code=site_of[ip.index]), visits)
    op = kind == "op"
    stage.add("op_appointments", oc.frame(appointment_id=vid[op], nhs_number=nhs[op], appointment_date=day[op],
                                        attendance_status="ATTENDED"), visits)
    home = kind == "home"
    stage.add("community_contacts", oc.frame(contact_id=vid[home], nhs_number=nhs[home], contact_date=day[home],
                                           service="district_nursing"), visits)
    report.notes.append("Admissions are emergency (21) for ER and Inpatient visits, admissions from the ER (8870) and "
                        "admissions on the day of or the day after an ER visit; otherwise elective (11). A&E acuity, "
                        "critical care days and discharge method are unknown; outpatient visits count as attended.")


# ---- clinical events -------------------------------------------------------------------------
def _conditions(stage: Staging, frame: pd.DataFrame | None, numbers: dict[str, str]) -> None:
    if frame is None:
        return
    raw = _col(frame, "condition_source_value")
    clean = raw.str.upper().str.replace(".", "", regex=False)
    key = (oc.mapped(raw, condition_for_snomed)
           .fillna(oc.mapped(clean.where(oc.is_(clean, ICD10_LIKE)), condition_for_icd10))
           .fillna(oc.map_(_col(frame, "condition_concept_id"), CONDITION_CONCEPTS)))
    code = oc.map_(key, CONDITION_SNOMED).fillna(raw.where(oc.is_(raw, SNOMED)))
    hospital = code.isna() & oc.is_(clean, ICD10_LIKE)  # other ICD-10 diagnoses: admission diagnoses, not GP events
    if hospital.any():
        stage.report.notes.append(f"{int(hospital.sum()):,} ICD-10 condition row(s) outside the long-term conditions "
                                  "are used only as admission diagnoses.")
    stage.reject(frame[code.isna() & ~hospital], "unmapped_code", "condition_source_value", "condition_occurrence")
    ok = code.notna()
    stage.add("gp_events", oc.frame(event_id=frame["condition_occurrence_id"][ok],
                                  nhs_number=oc.map_(frame["person_id"][ok], numbers),
                                  event_date=oc.day(frame["condition_start_date"][ok]), code_system="SNOMED",
                                  code=code[ok], value=pd.NA), frame)


def _drugs(stage: Staging, frame: pd.DataFrame | None, numbers: dict[str, str]) -> None:
    if frame is None:
        return
    bnf = oc.mapped(_col(frame, "drug_source_value"), bnf_for_name)
    stage.reject(frame[bnf.isna()], "unmapped_code", "drug_source_value", "drug_exposure")
    ok = bnf.notna()
    stage.add("prescriptions", oc.frame(prescription_id=frame["drug_exposure_id"][ok],
                                      nhs_number=oc.map_(frame["person_id"][ok], numbers),
                                      issue_date=oc.day(frame["drug_exposure_start_date"][ok]), bnf_code=bnf[ok]), frame)


def _measures(stage: Staging, frame: pd.DataFrame | None, table: str, prefix: str, numbers: dict[str, str],
              report: ConversionReport) -> None:
    """Measurements or observations with a code the features read (concept map, else a SNOMED source value)."""
    if frame is None:
        return
    source = _col(frame, f"{table}_source_value")
    code = (oc.map_(_col(frame, f"{table}_concept_id"), OBSERVATION_CONCEPTS)
            .fillna(source.where(oc.is_(source, SNOMED))))
    ok = code.notna()
    if (~ok).any():
        report.notes.append(f"{int((~ok).sum()):,} {table} rows not used: no predictor reads them.")
    stage.add("gp_events", oc.frame(event_id=prefix + frame[f"{table}_id"][ok],
                                  nhs_number=oc.map_(frame["person_id"][ok], numbers),
                                  event_date=oc.day(frame[f"{table}_date"][ok]), code_system="SNOMED", code=code[ok],
                                  value=_col(frame, "value_as_number")[ok]), frame)
