"""The reference engine: a whole feature set computed in pandas from the source tables, for a given cohort.

It is the independent implementation the SQL engines are checked against (tests/spec): slow and simple on
purpose, no SQL anywhere. The cohort (person, index date rows) is an input: cohort and label rules are not
features and stay with the build.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from features.definitions.model import AttributeFeature, DerivedFeature, EventFeature, FeatureSet
from features.reference.events import DAY, feature_values, paired
from features.reference.expressions import evaluate


def read_sources(warehouse: Path, tables: list[str]) -> dict[str, pd.DataFrame]:
    """Whole tables from a DuckDB warehouse file as DataFrames (DuckDB is only the storage read here)."""
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return {t: con.table(t).df() for t in tables}
    finally:
        con.close()


def source_tables(fs: FeatureSet) -> list[str]:
    """The tables a feature set reads."""
    tables = {"patients", "imd"} | {f.source for f in fs.features if isinstance(f, EventFeature)}
    return sorted(tables)


def attribute_values(
    attrs: list[AttributeFeature], cohort: pd.DataFrame, patients: pd.DataFrame, imd: pd.DataFrame
) -> pd.DataFrame:
    """Person attributes as at each cohort row's index date."""
    p = cohort[["person_id"]].merge(patients, on="person_id", how="left", validate="many_to_one")
    if len(p) != len(cohort) or p["year_of_birth"].isna().any():
        raise ValueError("the cohort names people missing from patients")
    idx = pd.to_datetime(cohort["index_date"]).reset_index(drop=True)
    out = pd.DataFrame(index=range(len(cohort)))
    for a in attrs:
        match a.attribute:
            case "age":  # completed years since the first of the birth month
                birth_month = p["month_of_birth"].astype("int64")
                before_birthday = (idx.dt.month < birth_month).astype("int64")
                out[a.name] = idx.dt.year - p["year_of_birth"].astype("int64") - before_birthday
            case "sex" | "practice_code":
                out[a.name] = p[a.attribute]
            case "ethnic_category":
                out[a.name] = p["ethnic_category"].astype(object).where(p["ethnic_category"].notna(), "99")
            case "imd_decile":
                deciles = p[["lsoa11"]].merge(imd[["lsoa11", "imd_decile"]], on="lsoa11", how="left")
                if len(deciles) != len(p):
                    raise ValueError("imd: an LSOA appears twice")
                out[a.name] = deciles["imd_decile"].to_numpy()
            case "registered_days":
                out[a.name] = (idx - pd.to_datetime(p["registration_start"])) / DAY
    return out


def evaluate_features(fs: FeatureSet, sources: Mapping[str, pd.DataFrame], cohort: pd.DataFrame) -> pd.DataFrame:
    """person_id, index_date and every feature of `fs` (in order), one row per cohort row (in its order).
    `cohort` holds person_id and index_date; `sources` the tables `source_tables(fs)` names."""
    cohort = cohort[["person_id", "index_date"]].reset_index(drop=True)
    cohort = cohort.assign(index_date=pd.to_datetime(cohort["index_date"]).dt.normalize())
    out = cohort.copy()
    attrs = [f for f in fs.features if isinstance(f, AttributeFeature)]
    out = pd.concat([out, attribute_values(attrs, cohort, sources["patients"], sources["imd"])], axis=1)
    events: dict[str, pd.DataFrame] = {}
    for f in fs.features:
        if isinstance(f, EventFeature):
            if f.source not in events:
                events[f.source] = paired(sources[f.source], cohort)
            out[f.name] = feature_values(f, events[f.source], len(cohort)).to_numpy()
    for f in fs.features:  # declared after what they depend on (FeatureSet checks it)
        if isinstance(f, DerivedFeature):
            out[f.name] = evaluate(f.expression, out[["person_id", *f.depends_on]]).to_numpy()
    return out[["person_id", "index_date", *(f.name for f in fs.features)]]


def reference_features(warehouse: Path, fs: FeatureSet, cohort: pd.DataFrame) -> pd.DataFrame:
    """`evaluate_features` with the sources read from a DuckDB warehouse file."""
    return evaluate_features(fs, read_sources(warehouse, source_tables(fs)), cohort)
