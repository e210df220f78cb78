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
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.sources import codes
from features.sources.formats.common import column, ConversionReport, Staging, read_source, surrogate_nhs_numbers
from features.sources.formats.vocab import CONDITION_SNOMED, bnf_for_name, condition_for_snomed, ethnic_category

EMERGENCY_ADMISSION_CODE = "183452005"  # Emergency hospital admission (procedure)
PRIMARY_CARE = ("wellness", "ambulatory", "virtual")
ADMISSION_ICD10 = {**codes.CONDITION_ADMISSION_ICD10, **codes.EXACERBATION_ICD10, "hypertension": "I10X",
                   "depression": "F329"}
OBSERVATION_LOINC = {"8480-6": "271649006", "39156-5": "60621009"}  # systolic BP, BMI
SMOKING_LOINC = "72166-2"
REFILL_DAYS, MAX_ISSUES = 28, 600


def convert(src: Path, out: Path) -> ConversionReport:
    report = ConversionReport(format="synthea", source=str(src), staged=str(out), synthetic=True)
    stage = Staging(report)
    patients = read_source(src, "patients", True, report, ["Id", "BIRTHDATE", "GENDER"])
    encounters = read_source(src, "encounters", True, report, ["Id", "START", "PATIENT", "ENCOUNTERCLASS"])
    orgs = read_source(src, "organizations", False, report, ["Id"])
    numbers = surrogate_nhs_numbers(patients["Id"].dropna().tolist())
    encounters = _known(stage, encounters, numbers, "encounters")
    encounters["cls"] = encounters["ENCOUNTERCLASS"].str.strip().str.lower()
    encounters["start"] = pd.to_datetime(encounters["START"], errors="coerce", utc=True, format="ISO8601").dt.tz_localize(None)
    encounters["stop"] = pd.to_datetime(column(encounters, "STOP"), errors="coerce", utc=True, format="ISO8601").dt.tz_localize(None)
    bad = encounters["start"].isna()
    stage.reject(encounters[bad], "wrong_type", "START", "encounters")
    encounters = encounters[~bad]
    known_classes = {"inpatient", "emergency", "urgentcare", "outpatient", "home", "hospice", "snf", *PRIMARY_CARE}
    odd = ~encounters["cls"].isin(known_classes)
    stage.reject(encounters[odd], "unmapped_code", "ENCOUNTERCLASS", "encounters")
    encounters = encounters[~odd]
    end = encounters["stop"].max() if encounters["stop"].notna().any() else encounters["start"].max()

    practices, practice_of = _practices(encounters, orgs, patients, report)
    stage.add("practices", practices, orgs)
    sites, site_of = _sites(encounters, orgs, report)
    stage.add("sites", sites, orgs)
    imd, lsoa = _deprivation(patients, report)
    if imd is not None:
        stage.add("imd", imd)
    birth = pd.to_datetime(patients["BIRTHDATE"], errors="coerce")
    death = pd.to_datetime(column(patients, "DEATHDATE"), errors="coerce")
    gender = patients["GENDER"].str.strip().str.upper()
    stage.add("patients", pd.DataFrame({
        "nhs_number": patients["Id"].map(numbers), "year_of_birth": birth.dt.year.astype("Int64").astype("string"),
        "month_of_birth": birth.dt.month.astype("Int64").astype("string"),
        "sex": gender.where(gender.isin(["M", "F"]), "U"),
        "ethnic_category": [ethnic_category(r) for r in column(patients, "RACE")],
        "lsoa11": lsoa, "practice_code": patients["Id"].map(practice_of).fillna("Y99999"),
        "registration_start": birth.dt.strftime("%Y-%m-%d"), "registration_end": None,
        "date_of_death": death.dt.strftime("%Y-%m-%d")}), patients)
    _encounter_tables(stage, encounters, numbers, site_of)
    _conditions(stage, src, report, numbers)
    _medications(stage, src, report, numbers, end, pd.Series(death.to_numpy(), index=patients["Id"].to_numpy()))
    _observations(stage, src, report, numbers)
    procedures = read_source(src, "procedures", False, report)
    if procedures is not None:
        report.notes.append(f"{len(procedures):,} procedure rows read and not used: no predictor reads procedures.")
    return stage.write(out)


def _known(stage: Staging, frame: pd.DataFrame, numbers: dict[str, str], table: str) -> pd.DataFrame:
    """Rows whose PATIENT is in patients.csv; the others quarantined as unknown_person."""
    ok = frame["PATIENT"].isin(numbers.keys())
    stage.reject(frame[~ok], "unknown_person", "PATIENT", table)
    return frame[ok].copy()


def _events_file(stage: Staging, src: Path, report: ConversionReport, numbers: dict[str, str], stem: str,
                 columns: list[str]) -> pd.DataFrame | None:
    """An optional per-patient file, its rows for unknown patients quarantined; None when absent."""
    frame = read_source(src, stem, False, report, columns)
    return None if frame is None else _known(stage, frame, numbers, stem)


def _practices(enc: pd.DataFrame, orgs: pd.DataFrame | None, patients: pd.DataFrame,
               report: ConversionReport) -> tuple[pd.DataFrame, dict[str, str]]:
    primary = enc[enc["cls"].isin(PRIMARY_CARE) & column(enc, "ORGANIZATION").notna()]
    if primary.empty:
        usual = pd.Series(dtype="string")
    else:
        counts = primary.groupby(["PATIENT", "ORGANIZATION"]).size().reset_index(name="n")
        usual = counts.sort_values(["PATIENT", "n", "ORGANIZATION"], ascending=[True, False, True]) \
            .drop_duplicates("PATIENT").set_index("PATIENT")["ORGANIZATION"]
    code = {org: f"Y{i + 1:05d}" for i, org in enumerate(sorted(usual.unique()))}
    city = orgs.set_index("Id")["CITY"].to_dict() if orgs is not None and "CITY" in orgs else {}
    pcns = {c: f"U{i + 1:05d}" for i, c in enumerate(sorted({str(city.get(o, "")) for o in code}))}
    rows = [{"practice_code": p, "pcn_code": pcns[str(city.get(o, ""))], "place": str(city.get(o, "")),
             "icb_code": ""} for o, p in code.items()]
    labels = [_org_label(orgs, o) for o in code]
    without = int((~patients["Id"].isin(usual.index)).sum())
    if without:
        rows.append({"practice_code": "Y99999", "pcn_code": "U99999", "place": "", "icb_code": ""})
        labels.append(-1)  # made by the mapping: no source row
        report.notes.append(f"{without:,} patient(s) had no primary care encounter: registered with practice Y99999.")
    report.notes.append("Practices are the organisations of each patient's most frequent wellness, ambulatory or "
                        "virtual encounters; PCNs group practices by city.")
    return pd.DataFrame(rows, index=labels), {pid: code[o] for pid, o in usual.items()}


def _org_label(orgs: pd.DataFrame | None, org: str) -> int:
    """The row label of organisation `org` in organizations.csv (-1 when absent), the provenance of what it maps to."""
    if orgs is None:
        return -1
    hit = orgs.index[orgs["Id"] == org]
    return int(hit[0]) if len(hit) else -1


def _sites(enc: pd.DataFrame, orgs: pd.DataFrame | None, report: ConversionReport) -> tuple[pd.DataFrame, dict]:
    hospital = enc[enc["cls"].isin(["inpatient", "emergency", "urgentcare"])]
    org = column(hospital, "ORGANIZATION").fillna("(none)")
    site_of = {o: f"RS{chr(65 + i // 100)}{i % 100:02d}" for i, o in enumerate(sorted(org.unique()))}
    names = orgs.set_index("Id")["NAME"].to_dict() if orgs is not None and "NAME" in orgs else {}
    rows = []
    for o, site in site_of.items():
        spells = hospital[(org == o) & (hospital["cls"] == "inpatient")]
        rows.append({"site_code": site, "site_name": str(names.get(o, o)), "ga_beds": str(max(1, _peak_census(spells))),
                     "critical_care_beds": None})
    if rows:
        report.notes.append("Hospital bed numbers are estimated as the highest midnight census of inpatient "
                            "encounters seen in the export (Synthea records no bed base).")
    return pd.DataFrame(rows, columns=["site_code", "site_name", "ga_beds", "critical_care_beds"],
                        index=[_org_label(orgs, o) for o in site_of]), site_of


def _peak_census(spells: pd.DataFrame) -> int:
    if spells.empty:
        return 0
    start = spells["start"].dt.normalize()
    stop = spells["stop"].fillna(spells["start"]).dt.normalize()
    nights = (stop - start).dt.days.clip(lower=0)
    if nights.sum() == 0:
        return 0
    events = pd.concat([pd.Series(1, index=start[nights > 0]), pd.Series(-1, index=stop[nights > 0])])
    return int(events.groupby(level=0).sum().sort_index().cumsum().max())


def _deprivation(patients: pd.DataFrame, report: ConversionReport) -> tuple[pd.DataFrame | None, pd.Series]:
    income = pd.to_numeric(column(patients, "INCOME"), errors="coerce").astype("float64")  # NaN, not NA: ranks skip it
    if not income.notna().any():
        report.notes.append("No INCOME in patients.csv: deprivation (IMD) is unknown for everyone.")
        return None, pd.Series(None, index=patients.index, dtype="string")
    decile = (income.rank(method="first", pct=True) * 10).apply(np.ceil).clip(1, 10)
    lsoa = decile.map(lambda d: f"E01{990000 + int(d):06d}" if d == d else None).astype("string")
    report.notes.append("Synthea has no LSOA: deprivation is a proxy from income deciles within this export "
                        "(lowest income = decile 1), held as proxy areas E01990001-E01990010, not real LSOAs.")
    imd = pd.DataFrame({"lsoa11": [f"E01{990000 + d:06d}" for d in range(1, 11)],
                        "imd_decile": [str(d) for d in range(1, 11)]})
    return imd, lsoa


def _encounter_tables(stage: Staging, enc: pd.DataFrame, numbers: dict[str, str], site_of: dict) -> None:
    nhs = enc["PATIENT"].map(numbers)
    day = enc["start"].dt.strftime("%Y-%m-%d")
    site = column(enc, "ORGANIZATION").fillna("(none)").map(site_of)
    urgent = enc[enc["cls"].isin(["emergency", "urgentcare"])]
    stage.add("ae_attendances", pd.DataFrame({
        "attendance_id": urgent["Id"], "nhs_number": nhs[urgent.index],
        "arrival_time": urgent["start"].dt.strftime("%Y-%m-%d %H:%M:%S"),
        "departure_time": urgent["stop"].dt.strftime("%Y-%m-%d %H:%M:%S"), "site_code": site[urgent.index]}), enc)
    inpatient = enc[enc["cls"] == "inpatient"]
    arrivals = urgent[["PATIENT", "start"]].rename(columns={"start": "arrived"})
    pairs = inpatient[["Id", "PATIENT", "start"]].merge(arrivals, on="PATIENT")
    after_ae = set(pairs.loc[(pairs.start >= pairs.arrived) & (pairs.start - pairs.arrived <= pd.Timedelta(days=1)), "Id"])
    emergency = (column(inpatient, "CODE").astype("string").str.strip() == EMERGENCY_ADMISSION_CODE) | inpatient["Id"].isin(after_ae)
    reason = column(inpatient, "REASONCODE").map(condition_for_snomed).map(ADMISSION_ICD10)
    stage.add("apc_spells", pd.DataFrame({
        "spell_id": inpatient["Id"], "nhs_number": nhs[inpatient.index], "admission_date": day[inpatient.index],
        "discharge_date": inpatient["stop"].dt.strftime("%Y-%m-%d"),
        "admission_method": np.where(emergency, "21", "11"), "primary_diagnosis": reason,
        "site_code": site[inpatient.index]}), enc)
    outpatient = enc[enc["cls"] == "outpatient"]
    stage.add("op_appointments", pd.DataFrame({"appointment_id": outpatient["Id"], "nhs_number": nhs[outpatient.index],
                                               "appointment_date": day[outpatient.index],
                                               "attendance_status": "ATTENDED"}), enc)
    community = enc[enc["cls"].isin(["home", "hospice"])]
    stage.add("community_contacts", pd.DataFrame({
        "contact_id": community["Id"], "nhs_number": nhs[community.index], "contact_date": day[community.index],
        "service": np.where(community["cls"] == "hospice", "palliative_care", "district_nursing")}), enc)
    snf = enc[enc["cls"] == "snf"]
    stage.add("social_care", pd.DataFrame({"package_id": snf["Id"], "nhs_number": nhs[snf.index],
                                           "service_type": "nursing_care", "start_date": day[snf.index],
                                           "end_date": snf["stop"].dt.strftime("%Y-%m-%d")}), enc)
    primary = enc[enc["cls"].isin(PRIMARY_CARE)]
    code = column(primary, "CODE").astype("string").str.strip()
    coded = code.str.fullmatch(r"[0-9]{6,18}").fillna(False)
    _gp_events(stage, enc, "e" + primary["Id"][coded], nhs[primary.index][coded], day[primary.index][coded],
               code[coded])
    if (~coded).any():
        stage.reject(primary[~coded], "unmapped_code", "CODE", "encounters")


def _conditions(stage: Staging, src: Path, report: ConversionReport, numbers: dict[str, str]) -> None:
    frame = _events_file(stage, src, report, numbers, "conditions", ["START", "PATIENT", "CODE"])
    if frame is None:
        return
    raw = frame["CODE"].astype("string").str.strip()
    key = raw.map(condition_for_snomed)
    code = key.map(CONDITION_SNOMED).fillna(raw.where(raw.str.fullmatch(r"[0-9]{6,18}").fillna(False)))
    start = pd.to_datetime(frame["START"], errors="coerce", format="ISO8601")
    bad = code.isna() | start.isna()
    stage.reject(frame[code.isna()], "unmapped_code", "CODE", "conditions")
    stage.reject(frame[code.notna() & start.isna()], "wrong_type", "START", "conditions")
    ok = frame[~bad]
    _gp_events(stage, frame, "c" + ok["_row"].astype(str), ok["PATIENT"].map(numbers),
               start[~bad].dt.strftime("%Y-%m-%d"), code[~bad])


def _medications(stage: Staging, src: Path, report: ConversionReport, numbers: dict[str, str], end: pd.Timestamp,
                 death: pd.Series) -> None:
    """An issue every REFILL_DAYS from START while the medicine runs: to STOP (or the export's end), never after
    the export's end or the patient's DEATHDATE (`death`: patient Id -> date). Only a source row whose own START
    lies after death yields an issue after it (one, on START), which the loader quarantines against that row."""
    frame = _events_file(stage, src, report, numbers, "medications", ["START", "PATIENT", "DESCRIPTION"])
    if frame is None:
        return
    bnf = frame["DESCRIPTION"].map(bnf_for_name)
    stage.reject(frame[bnf.isna()], "unmapped_code", "DESCRIPTION", "medications")
    ok = frame[bnf.notna()].assign(bnf=bnf[bnf.notna()])
    start = pd.to_datetime(ok["START"], errors="coerce", utc=True, format="ISO8601").dt.tz_localize(None).dt.normalize()
    stage.reject(ok[start.isna()], "wrong_type", "START", "medications")
    ok, start = ok[start.notna()], start[start.notna()]
    stop = pd.to_datetime(column(ok, "STOP"), errors="coerce", utc=True, format="ISO8601").dt.tz_localize(None)
    died = ok["PATIENT"].map(death.groupby(level=0).min()).astype("datetime64[ns]")
    last = stop.fillna(end).clip(upper=end)
    cut = died.notna() & (died < last) & (start <= died)  # a row starting after death: its own one issue
    last = last.mask(cut, died)
    issues = (((last.dt.normalize() - start).dt.days // REFILL_DAYS) + 1).clip(lower=1, upper=MAX_ISSUES)
    issues = issues.fillna(1).astype(int)
    rep = ok.loc[ok.index.repeat(issues)]
    step = np.concatenate([np.arange(n) for n in issues]) if len(issues) else np.array([], dtype=int)
    dates = start.loc[rep.index].to_numpy() + (step * REFILL_DAYS).astype("timedelta64[D]")
    stage.add("prescriptions", pd.DataFrame({
        "prescription_id": "m" + rep["_row"].astype(str).to_numpy() + "_" + step.astype(str),
        "nhs_number": rep["PATIENT"].map(numbers).to_numpy(), "issue_date": pd.to_datetime(dates).strftime("%Y-%m-%d"),
        "bnf_code": rep["bnf"].to_numpy()}, index=rep.index), frame)
    report.notes.append(f"Medicines are issued every {REFILL_DAYS} days from START to STOP (or the export's end), "
                        "never after the export's end or the patient's death"
                        + (f"; {int(cut.sum()):,} medicine(s) stopped at the patient's death." if cut.any() else "."))


def _observations(stage: Staging, src: Path, report: ConversionReport, numbers: dict[str, str]) -> None:
    frame = _events_file(stage, src, report, numbers, "observations", ["DATE", "PATIENT", "CODE"])
    if frame is None:
        return
    code = frame["CODE"].astype("string").str.strip()
    value = pd.to_numeric(column(frame, "VALUE"), errors="coerce")
    smoker = (code == SMOKING_LOINC) & column(frame, "VALUE").astype("string").str.lower().str.contains("current").fillna(False)
    snomed = code.map(OBSERVATION_LOINC).where(value.notna()).fillna(pd.Series(np.where(smoker, codes.SMOKER_CODE, None),
                                                                                index=frame.index))
    used = snomed.notna()
    when = pd.to_datetime(frame["DATE"], errors="coerce", utc=True, format="ISO8601").dt.tz_localize(None)
    used &= when.notna()
    report.notes.append(f"{int((~used).sum()):,} observation rows not used: no predictor reads them.")
    rows = frame[used]
    _gp_events(stage, frame, "o" + rows["_row"].astype(str), rows["PATIENT"].map(numbers),
               when[used].dt.strftime("%Y-%m-%d"), snomed[used], value[used].where(~smoker[used]))


def _gp_events(stage: Staging, origin: pd.DataFrame, ids, nhs, dates, code, value=None) -> None:
    """Coded primary care events (SNOMED CT), with a value where one was measured, from rows of `origin`."""
    stage.add("gp_events", pd.DataFrame({"event_id": ids, "nhs_number": nhs, "event_date": dates,
                                         "code_system": "SNOMED", "code": code, "value": value}), origin)
