"""Write a generated synthetic ICS in Synthea's CSV layout (for the Synthea loader's end-to-end test): the
same people and events, with Synthea's ids, encounter classes, SNOMED conditions, medicine names and courses of
repeat medicines (open when the patient died on them, as Synthea leaves them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.sources import codes
from features.sources.formats.vocab import BNF_BY_NAME

RACE = {"White": "white", "Black": "black", "Asian": "asian", "Mixed": "other", "Other": "other", "Unknown": ""}
LOINC = {"271649006": "8480-6", "60621009": "39156-5"}
COURSE_GAP = 130  # days: the synthetic ICS issues repeat medicines every 120 days
ENCOUNTER_COLUMNS = [
    "Id",
    "START",
    "STOP",
    "PATIENT",
    "ORGANIZATION",
    "PROVIDER",
    "PAYER",
    "ENCOUNTERCLASS",
    "CODE",
    "DESCRIPTION",
    "BASE_ENCOUNTER_COST",
    "TOTAL_CLAIM_COST",
    "PAYER_COVERAGE",
    "REASONCODE",
    "REASONDESCRIPTION",
]


def write_synthea(ics: Path, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    read = lambda name: pd.read_parquet(ics / f"{name}.parquet")  # noqa: E731
    patients, practices, sites, imd = read("patients"), read("practices"), read("sites"), read("imd")
    pid = "pt-" + patients.nhs_number.astype(str)
    ids = dict(zip(patients.nhs_number.astype(str), pid))
    decile = patients.lsoa11.map(imd.set_index("lsoa11").imd_decile)
    broad = patients.ethnic_category.map(codes.BROAD_ETHNIC_GROUP).fillna("Unknown")
    pd.DataFrame(
        {
            "Id": pid,
            "BIRTHDATE": patients.year_of_birth.astype(str)
            + "-"
            + patients.month_of_birth.astype(int).map("{:02d}".format)
            + "-15",
            "DEATHDATE": patients.date_of_death,
            "SSN": "999-00-0000",
            "FIRST": "A",
            "LAST": "B",
            "RACE": broad.map(RACE),
            "ETHNICITY": "nonhispanic",
            "GENDER": patients.sex.where(patients.sex != "U", "F"),
            "CITY": patients.practice_code.map(practices.set_index("practice_code").pcn_code),
            "INCOME": (decile * 9000 + 5000).astype("Int64"),
        }
    ).to_csv(out / "patients.csv", index=False)
    pd.concat(
        [
            pd.DataFrame({"Id": practices.practice_code, "NAME": practices.practice_code, "CITY": practices.pcn_code}),
            pd.DataFrame({"Id": sites.site_code, "NAME": sites.site_name, "CITY": "Hospital"}),
        ]
    ).to_csv(out / "organizations.csv", index=False)

    def enc(frame, key, start, stop, org, cls, code, reason=None) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "Id": f"{key}-" + frame[key].astype(str),
                "START": frame[start].astype(str),
                "STOP": frame[stop].astype(str) if stop else frame[start].astype(str),
                "PATIENT": frame.nhs_number.astype(str).map(ids),
                "ORGANIZATION": org,
                "ENCOUNTERCLASS": cls,
                "CODE": code,
                "DESCRIPTION": cls,
                "REASONCODE": reason,
            }
        )

    apc = read("apc_spells")
    emergency = apc.admission_method.isin(codes.EMERGENCY_ADMISSION_METHODS)
    ae, op, community = read("ae_attendances"), read("op_appointments"), read("community_contacts")
    op = op[op.attendance_status == "ATTENDED"]
    first_seen = patients.assign(
        START=pd.to_datetime(patients.registration_start).clip(lower=pd.Timestamp("2015-01-01")).dt.strftime("%Y-%m-%d")
    )
    encounters = pd.concat(
        [
            enc(
                apc,
                "spell_id",
                "admission_date",
                "discharge_date",
                apc.site_code,
                "inpatient",
                np.where(emergency, "183452005", "32485007"),
            ),
            enc(ae, "attendance_id", "arrival_time", "departure_time", ae.site_code, "emergency", "50849002"),
            enc(
                op,
                "appointment_id",
                "appointment_date",
                None,
                op.nhs_number.map(lambda _: None),
                "outpatient",
                "185347001",
            ),
            enc(
                community,
                "contact_id",
                "contact_date",
                None,
                None,
                np.where(community.service == "palliative_care", "hospice", "home"),
                "185460008",
            ),
            enc(first_seen, "nhs_number", "START", None, first_seen.practice_code, "wellness", "162673000"),
        ],
        ignore_index=True,
    )
    encounters.reindex(columns=ENCOUNTER_COLUMNS).to_csv(out / "encounters.csv", index=False)

    gp = read("gp_events")
    conditions = gp[gp.code.isin({c.snomed for c in codes.CONDITIONS})]
    pd.DataFrame(
        {
            "START": conditions.event_date.astype(str),
            "STOP": None,
            "PATIENT": conditions.nhs_number.astype(str).map(ids),
            "ENCOUNTER": None,
            "CODE": conditions.code,
            "DESCRIPTION": "condition",
        }
    ).to_csv(out / "conditions.csv", index=False)
    obs = gp[gp.code.isin(LOINC)]
    pd.DataFrame(
        {
            "DATE": obs.event_date.astype(str),
            "PATIENT": obs.nhs_number.astype(str).map(ids),
            "ENCOUNTER": None,
            "CATEGORY": "vital-signs",
            "CODE": obs.code.map(LOINC),
            "DESCRIPTION": "observation",
            "VALUE": obs.value,
            "UNITS": "",
            "TYPE": "numeric",
        }
    ).to_csv(out / "observations.csv", index=False)
    names = {}
    for name, bnf in BNF_BY_NAME:
        names.setdefault(bnf, name)
    rx = read("prescriptions")
    courses = _courses(rx[rx.bnf_code.isin(names)], patients)
    pd.DataFrame(
        {
            "START": courses.start.dt.strftime("%Y-%m-%d"),
            "STOP": courses.stop.dt.strftime("%Y-%m-%d"),
            "PATIENT": courses.nhs_number.astype(str).map(ids),
            "PAYER": None,
            "ENCOUNTER": None,
            "CODE": "1",
            "DESCRIPTION": courses.bnf_code.map(names) + " oral tablet",
        }
    ).to_csv(out / "medications.csv", index=False)
    return out


def _courses(rx: pd.DataFrame, patients: pd.DataFrame) -> pd.DataFrame:
    """Repeat prescriptions as Synthea records them: one row per course of a medicine (issues at most COURSE_GAP
    days apart), STOP its last issue, but no STOP for a course still running when the patient died or the data
    ended (Synthea leaves those open, so the mapper must stop them at death). Rescue packs stay one row per issue."""
    rx = rx.assign(day=pd.to_datetime(rx.issue_date)).sort_values(["nhs_number", "bnf_code", "day"])
    acute = rx.bnf_code.isin(codes.RESCUE_PACK)
    gap = rx.groupby(["nhs_number", "bnf_code"]).day.diff().dt.days
    course = (acute | gap.isna() | (gap > COURSE_GAP)).cumsum()
    out = rx.groupby(course).agg(
        nhs_number=("nhs_number", "first"),
        bnf_code=("bnf_code", "first"),
        start=("day", "min"),
        stop=("day", "max"),
        acute=("bnf_code", lambda b: b.isin(codes.RESCUE_PACK).any()),
    )
    died = pd.to_datetime(out.nhs_number.map(patients.set_index("nhs_number").date_of_death))
    running = ((died - out.stop).dt.days.between(0, COURSE_GAP)) | ((rx.day.max() - out.stop).dt.days <= COURSE_GAP)
    return out.assign(stop=out.stop.mask(running & ~out.acute)).reset_index(drop=True)
