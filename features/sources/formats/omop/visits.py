"""OMOP visits mapped to PHM activity: each visit's kind (ER, inpatient, outpatient, home; primary care
counted), hospital sites with beds from the midnight census, primary diagnoses, and the A&E, spell,
outpatient and community tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.sources import codes
from features.sources.formats.common import ConversionReport, FormatError, Staging
from features.sources.formats.common import column as _col
from features.sources.formats.omop import columns as oc
from features.sources.formats.omop.columns import TS
from features.sources.formats.omop.events import ICD10_LIKE

VISIT_KIND = {
    "9203": "er",
    "9201": "ip",
    "262": "erip",
    "9202": "op",
    "581476": "home",
    "581477": "primary",
    "38004207": "primary",
}
VISIT_TEXT = {
    "er": "9203",
    "emergency": "9203",
    "emergency room visit": "9203",
    "ip": "9201",
    "inpatient": "9201",
    "inpatient visit": "9201",
    "erip": "262",
    "er and inpatient visit": "262",
    "emergency room and inpatient visit": "262",
    "op": "9202",
    "outpatient": "9202",
    "outpatient visit": "9202",
    "home visit": "581476",
    "office visit": "581477",
    "ambulatory clinic / center": "38004207",
}
ER_ADMITTED_FROM = "8870"  # Emergency Room (admitted_from_concept_id)
NO_SITE = "RZZ99"
SITE_CODES = [code for c in "ZYXWVUTSRQPONMLKJIHGFEDCBA" for n in range(1, 100) if (code := f"RZ{c}{n:02d}") != NO_SITE]


def visit_kinds(stage: Staging, visits: pd.DataFrame, report: ConversionReport) -> pd.DataFrame:
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


def stage_sites(
    stage: Staging, visits: pd.DataFrame, care_sites: pd.DataFrame | None, report: ConversionReport
) -> pd.Series:
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
    events = pd.concat(
        [
            pd.DataFrame({"site": site_of[spells][ok], "day": start[ok], "n": 1}),
            pd.DataFrame({"site": site_of[spells][ok & end.notna()], "day": end[ok & end.notna()], "n": -1}),
        ]
    )
    census = events.groupby(["site", "day"])["n"].sum().groupby(level=0).cumsum().groupby(level=0).max()
    sites = pd.DataFrame({"site_code": sorted(site_of.unique())})
    sites["site_name"] = oc.map_(
        oc.map_(sites["site_code"], {v: k for k, v in code.items()}),
        oc.lookup(care_sites, "care_site_id", "care_site_name"),
    ).fillna("")
    sites["ga_beds"] = pd.to_numeric(sites["site_code"].map(census)).fillna(0).clip(lower=1).astype(int).astype(str)
    sites["critical_care_beds"] = pd.NA
    sites.index = oc.rows_of(care_sites, oc.map_(sites["site_code"], {v: k for k, v in code.items()}))
    stage.add("sites", sites.astype("string"), care_sites)
    if len(sites):
        report.notes.append(
            "Hospital sites are the care sites of ER and inpatient visits (RZZ01...); bed numbers are "
            "estimated from observed occupancy (highest midnight census of inpatient visits, at least "
            "1); critical care beds unknown."
        )
    if (site_of == NO_SITE).any():
        report.notes.append(
            f"{int((site_of == NO_SITE).sum()):,} ER/inpatient visit(s) without a care site: site {NO_SITE}."
        )
    return site_of


def primary_diagnoses(conditions: pd.DataFrame | None) -> pd.Series:
    """Visit id -> ICD-10 primary diagnosis: the visit's first ICD-10 condition (by condition_occurrence_id)."""
    if conditions is None or "visit_occurrence_id" not in conditions:
        return pd.Series(dtype="string")
    code = _col(conditions, "condition_source_value").str.upper().str.replace(".", "", regex=False)
    dx = code.str[:4]
    ok = (
        oc.is_(code, ICD10_LIKE)
        & oc.is_(dx, codes.ICD10_PATTERN.strip("^$"))
        & conditions["visit_occurrence_id"].notna()
    )
    rows = pd.DataFrame(
        {
            "visit": conditions["visit_occurrence_id"],
            "dx": dx,
            "n": pd.to_numeric(conditions["condition_occurrence_id"], errors="coerce"),
            "id": conditions["condition_occurrence_id"],
        }
    )[ok]
    return rows.sort_values(["n", "id"]).drop_duplicates("visit").set_index("visit")["dx"]


def stage_visit_tables(
    stage: Staging,
    visits: pd.DataFrame,
    numbers: dict[str, str],
    site_of: pd.Series,
    diagnoses: pd.Series,
    report: ConversionReport,
) -> None:
    kind, vid, nhs = visits["_kind"], visits["visit_occurrence_id"], oc.map_(visits["person_id"], numbers)
    day = visits["_start"].dt.strftime("%Y-%m-%d")
    end_day = oc.day(_col(visits, "visit_end_date"))

    er = visits[kind.isin(["er", "erip"])]
    arrival = oc.when(_col(er, "visit_start_datetime")).fillna(er["_start"])
    departure = oc.when(_col(er, "visit_end_datetime"))
    by_date = oc.when(_col(er, "visit_end_date"))
    departure = departure.fillna(by_date.where(by_date >= arrival))  # a date alone before arrival: unknown
    stage.add(
        "ae_attendances",
        oc.frame(
            attendance_id=er["visit_occurrence_id"],
            nhs_number=nhs[er.index],
            arrival_time=arrival.dt.strftime(TS),
            departure_time=departure.dt.strftime(TS),
            site_code=site_of[er.index],
        ),
        visits,
    )

    ip = visits[kind.isin(["ip", "erip"])]
    pairs = ip[["visit_occurrence_id", "person_id", "_start"]].merge(
        er[["person_id", "_start"]].rename(columns={"_start": "er_start"}), on="person_id"
    )
    after_er = pairs.loc[(pairs["_start"] - pairs["er_start"]).dt.days.between(0, 1), "visit_occurrence_id"]
    emergency = (
        (ip["_kind"] == "erip")
        | (_col(ip, "admitted_from_concept_id") == ER_ADMITTED_FROM).fillna(False)
        | ip["visit_occurrence_id"].isin(after_er)
    )
    stage.add(
        "apc_spells",
        oc.frame(
            spell_id=ip["visit_occurrence_id"],
            nhs_number=nhs[ip.index],
            admission_date=day[ip.index],
            discharge_date=end_day[ip.index],
            admission_method=pd.Series(np.where(emergency, "21", "11"), index=ip.index),
            primary_diagnosis=oc.map_(ip["visit_occurrence_id"], diagnoses),
            site_code=site_of[ip.index],
        ),
        visits,
    )
    op = kind == "op"
    stage.add(
        "op_appointments",
        oc.frame(appointment_id=vid[op], nhs_number=nhs[op], appointment_date=day[op], attendance_status="ATTENDED"),
        visits,
    )
    home = kind == "home"
    stage.add(
        "community_contacts",
        oc.frame(contact_id=vid[home], nhs_number=nhs[home], contact_date=day[home], service="district_nursing"),
        visits,
    )
    report.notes.append(
        "Admissions are emergency (21) for ER and Inpatient visits, admissions from the ER (8870) and "
        "admissions on the day of or the day after an ER visit; otherwise elective (11). A&E acuity, "
        "critical care days and discharge method are unknown; outpatient visits count as attended."
    )
