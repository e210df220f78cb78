"""Synthea organisations mapped to PHM practices (each patient's most used primary care organisation;
PCNs by city) and hospital sites (beds from the highest midnight census), and income deciles as the
deprivation proxy (Synthea has no LSOA)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.sources.formats.common import ConversionReport, column
from features.sources.formats.synthea.encounters import PRIMARY_CARE


def map_practices(
    enc: pd.DataFrame, orgs: pd.DataFrame | None, patients: pd.DataFrame, report: ConversionReport
) -> tuple[pd.DataFrame, dict[str, str]]:
    primary = enc[enc["cls"].isin(PRIMARY_CARE) & column(enc, "ORGANIZATION").notna()]
    if primary.empty:
        usual = pd.Series(dtype="string")
    else:
        counts = primary.groupby(["PATIENT", "ORGANIZATION"]).size().reset_index(name="n")
        usual = (
            counts.sort_values(["PATIENT", "n", "ORGANIZATION"], ascending=[True, False, True])
            .drop_duplicates("PATIENT")
            .set_index("PATIENT")["ORGANIZATION"]
        )
    code = {org: f"Y{i + 1:05d}" for i, org in enumerate(sorted(usual.unique()))}
    city = orgs.set_index("Id")["CITY"].to_dict() if orgs is not None and "CITY" in orgs else {}
    pcns = {c: f"U{i + 1:05d}" for i, c in enumerate(sorted({str(city.get(o, "")) for o in code}))}
    rows = [
        {"practice_code": p, "pcn_code": pcns[str(city.get(o, ""))], "place": str(city.get(o, "")), "icb_code": ""}
        for o, p in code.items()
    ]
    labels = [org_label(orgs, o) for o in code]
    without = int((~patients["Id"].isin(usual.index)).sum())
    if without:
        rows.append({"practice_code": "Y99999", "pcn_code": "U99999", "place": "", "icb_code": ""})
        labels.append(-1)  # made by the mapping: no source row
        report.notes.append(f"{without:,} patient(s) had no primary care encounter: registered with practice Y99999.")
    report.notes.append(
        "Practices are the organisations of each patient's most frequent wellness, ambulatory or "
        "virtual encounters; PCNs group practices by city."
    )
    return pd.DataFrame(rows, index=labels), {pid: code[o] for pid, o in usual.items()}


def org_label(orgs: pd.DataFrame | None, org: str) -> int:
    """The row label of organisation `org` in organizations.csv (-1 when absent), the provenance of what it maps to."""
    if orgs is None:
        return -1
    hit = orgs.index[orgs["Id"] == org]
    return int(hit[0]) if len(hit) else -1


def map_sites(enc: pd.DataFrame, orgs: pd.DataFrame | None, report: ConversionReport) -> tuple[pd.DataFrame, dict]:
    hospital = enc[enc["cls"].isin(["inpatient", "emergency", "urgentcare"])]
    org = column(hospital, "ORGANIZATION").fillna("(none)")
    site_of = {o: f"RS{chr(65 + i // 100)}{i % 100:02d}" for i, o in enumerate(sorted(org.unique()))}
    names = orgs.set_index("Id")["NAME"].to_dict() if orgs is not None and "NAME" in orgs else {}
    rows = []
    for o, site in site_of.items():
        spells = hospital[(org == o) & (hospital["cls"] == "inpatient")]
        rows.append(
            {
                "site_code": site,
                "site_name": str(names.get(o, o)),
                "ga_beds": str(max(1, peak_census(spells))),
                "critical_care_beds": None,
            }
        )
    if rows:
        report.notes.append(
            "Hospital bed numbers are estimated as the highest midnight census of inpatient "
            "encounters seen in the export (Synthea records no bed base)."
        )
    return pd.DataFrame(
        rows,
        columns=["site_code", "site_name", "ga_beds", "critical_care_beds"],
        index=[org_label(orgs, o) for o in site_of],
    ), site_of


def peak_census(spells: pd.DataFrame) -> int:
    if spells.empty:
        return 0
    start = spells["start"].dt.normalize()
    stop = spells["stop"].fillna(spells["start"]).dt.normalize()
    nights = (stop - start).dt.days.clip(lower=0)
    if nights.sum() == 0:
        return 0
    events = pd.concat([pd.Series(1, index=start[nights > 0]), pd.Series(-1, index=stop[nights > 0])])
    return int(events.groupby(level=0).sum().sort_index().cumsum().max())


def deprivation_proxy(patients: pd.DataFrame, report: ConversionReport) -> tuple[pd.DataFrame | None, pd.Series]:
    income = pd.to_numeric(column(patients, "INCOME"), errors="coerce").astype("float64")  # NaN, not NA: ranks skip it
    if not income.notna().any():
        report.notes.append("No INCOME in patients.csv: deprivation (IMD) is unknown for everyone.")
        return None, pd.Series(None, index=patients.index, dtype="string")
    decile = (income.rank(method="first", pct=True) * 10).apply(np.ceil).clip(1, 10)
    lsoa = decile.map(lambda d: f"E01{990000 + int(d):06d}" if d == d else None).astype("string")
    report.notes.append(
        "Synthea has no LSOA: deprivation is a proxy from income deciles within this export "
        "(lowest income = decile 1), held as proxy areas E01990001-E01990010, not real LSOAs."
    )
    imd = pd.DataFrame(
        {"lsoa11": [f"E01{990000 + d:06d}" for d in range(1, 11)], "imd_decile": [str(d) for d in range(1, 11)]}
    )
    return imd, lsoa
