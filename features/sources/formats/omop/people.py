"""OMOP persons and their care sites mapped to PHM patients and practices: surrogate NHS numbers, birth
month, sex, ethnic category, LSOA from the location, registration start, death; practices and PCNs."""

from __future__ import annotations

import pandas as pd

from features.sources import codes
from features.sources.formats.common import ConversionReport, FormatError, Staging
from features.sources.formats.common import column as _col
from features.sources.formats.omop import columns as oc
from features.sources.formats.vocab import (
    ethnic_category,
)

GENDER = {"8507": "M", "8532": "F"}
NO_PRACTICE, NO_PCN = "Y99999", "U00001"


def map_practices(
    person: pd.DataFrame, care_sites: pd.DataFrame | None, locations: pd.DataFrame | None, report: ConversionReport
) -> tuple[pd.DataFrame, pd.Series]:
    site = _col(person, "care_site_id")
    ids = oc.natural(site.dropna())
    if len(ids) > 99_998:
        raise FormatError("person: more than 99,998 distinct care sites cannot be numbered as practices")
    code = {cs: f"Y{i + 1:05d}" for i, cs in enumerate(ids)}
    practice_of = oc.map_(site, code).fillna(NO_PRACTICE)
    usual = (
        pd.DataFrame({"p": practice_of, "l": _col(person, "location_id")})
        .dropna()
        .groupby(["p", "l"])
        .size()
        .reset_index(name="n")
        .sort_values(["p", "n", "l"], ascending=[True, False, True])
        .drop_duplicates("p")
        .set_index("p")["l"]
    )
    frame = pd.DataFrame({"practice_code": sorted(practice_of.unique())})
    care_site = oc.map_(frame["practice_code"], {v: k for k, v in code.items()})
    location = oc.map_(care_site, oc.lookup(care_sites, "care_site_id", "location_id")).fillna(
        oc.map_(frame["practice_code"], usual)
    )
    pcn = {loc: f"U{i + 2:05d}" for i, loc in enumerate(oc.natural(location.dropna()))}
    frame["pcn_code"] = oc.map_(location, pcn).fillna(NO_PCN)
    frame["place"] = oc.map_(location, oc.lookup(locations, "location_id", "city")).fillna("")
    frame["icb_code"] = ""
    frame.index = oc.rows_of(care_sites, care_site)
    report.notes.append(
        "Practices are the persons' care sites (Y00001... in care_site_id order); PCNs group "
        f"practices by location (U00002..., unknown {NO_PCN}); place is the location's city; "
        "ICB unknown."
    )
    if (practice_of == NO_PRACTICE).any():
        report.notes.append(
            f"{int((practice_of == NO_PRACTICE).sum()):,} person(s) without a care site: "
            f"registered with practice {NO_PRACTICE}."
        )
    return frame.astype("string"), practice_of


def map_patients(
    stage: Staging,
    person: pd.DataFrame,
    numbers: dict[str, str],
    practice_of: pd.Series,
    visits: pd.DataFrame,
    tables: dict[str, pd.DataFrame | None],
    report: ConversionReport,
) -> pd.DataFrame:
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
    sex = (
        oc.map_(_col(person, "gender_concept_id"), GENDER)
        .fillna(source_sex.where(source_sex.isin(["M", "F"])))
        .fillna("U")
    )
    race = _col(person, "race_concept_id").astype(object).where(lambda r: r.notna(), None)
    race_text = _col(person, "race_source_value").astype(object).where(lambda r: r.notna(), None)
    eth_text = _col(person, "ethnicity_source_value").astype(object).where(lambda r: r.notna(), None)
    combos = {
        k: (ethnic_category(k[0], k[2]) if ethnic_category(k[0], k[2]) != "Z" else ethnic_category(k[1], k[2]))
        for k in set(zip(race, race_text, eth_text))
    }
    ethnic = [combos[k] for k in zip(race, race_text, eth_text)]

    locations = tables["location"]
    lsoa = pd.Series(pd.NA, index=pid.index, dtype="string")
    for column in ("location_source_value", "zip"):
        value = oc.map_(_col(person, "location_id"), oc.lookup(locations, "location_id", column)).str.upper()
        lsoa = lsoa.fillna(value.where(oc.is_(value, codes.LSOA_PATTERN.strip("^$"))))
    report.notes.append(
        f"{int(lsoa.notna().sum()):,} of {len(pid):,} person(s) have an LSOA from their location. "
        "IMD linked only where the location gives an LSOA; otherwise deprivation is unknown."
    )

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
        + (f" {int(early.sum()):,} registration(s) before the birth month moved up to it." if early.any() else "")
    )

    death = tables["death"]
    if death is not None:
        stage.reject(death[oc.when(death["death_date"]).isna()], "wrong_type", "death_date", "death")
    return oc.frame(
        nhs_number=oc.map_(pid, numbers),
        year_of_birth=year,
        month_of_birth=month,
        sex=sex,
        ethnic_category=pd.Series(ethnic, index=pid.index),
        lsoa11=lsoa,
        practice_code=practice_of,
        registration_start=start.dt.strftime("%Y-%m-%d"),
        registration_end=pd.NA,
        date_of_death=oc.map_(pid, oc.earliest(death, "death_date")),
    )
