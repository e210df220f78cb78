"""Build a feature table (with labels) from the warehouse and write it with its manifest.

The warehouse is attached read-only (many readers may build at once); the Parquet output is
written to a temporary file and moved into place, so a failed build leaves no partial file.
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import date
from pathlib import Path

import duckdb
from pydantic import BaseModel, Field

from features.cohorts import CohortConfig, LabelConfig, cohort_sql, label_sql
from features.sources.loader import warehouse_source
from features.definitions.catalogue import FEATURE_SETS
from features.definitions.model import AttributeFeature, EventFeature, FeatureSet
from features.engine.compiler import FeatureCompiler
from features.engine.dialect import DuckDBDialect

DEFAULT_COHORTS = {
    "emergency_admission": CohortConfig(),
    "flare_up": CohortConfig(conditions=["copd", "asthma"], monitored_days=14),
}
DEFAULT_LABELS = {
    "emergency_admission": LabelConfig(outcome="emergency_admission", horizon_months=12),
    "flare_up": LabelConfig(outcome="exacerbation", horizon_months=None, horizon_days=14),
}
_SQL_WORDS = {"substr", "cast", "as", "double", "integer", "varchar", "coalesce"}


class FeatureSourceError(ValueError):
    """A source table or column the feature set needs is missing from the warehouse."""


class EmptyCohortError(ValueError):
    """No one is eligible at the requested index dates."""


class BuildConfig(BaseModel):
    """What to build: a feature set at one or more index dates, with its cohort and label rules."""

    feature_set: str = "emergency_admission"
    index_dates: list[date] = Field(min_length=1)
    cohort: CohortConfig | None = None
    label: LabelConfig | None = None
    ethnicity_as_predictor: bool = Field(False, description="Use ethnicity as a predictor (recorded in the manifest)")
    data_end: date | None = Field(None, description="Last day of data; default: the latest activity in the warehouse")

    def resolved(self) -> tuple[FeatureSet, CohortConfig, LabelConfig]:
        if self.feature_set not in FEATURE_SETS:
            raise ValueError(f"unknown feature set {self.feature_set!r}; choose from {sorted(FEATURE_SETS)}")
        fs = FEATURE_SETS[self.feature_set]
        return fs, self.cohort or DEFAULT_COHORTS[fs.name], self.label or DEFAULT_LABELS[fs.name]


def required_columns(fs: FeatureSet) -> dict[str, set[str]]:
    """Source table -> columns the feature set reads."""
    need: dict[str, set[str]] = {"patients": {"person_id", "year_of_birth", "month_of_birth", "registration_start",
                                              "registration_end", "date_of_death"}}
    for f in fs.features:
        if isinstance(f, AttributeFeature):
            col = {"imd_decile": None, "age": None, "registered_days": "registration_start"}.get(f.attribute, f.attribute)
            if f.attribute == "imd_decile":
                need.setdefault("imd", set()).update({"lsoa11", "imd_decile"})
                need["patients"].add("lsoa11")
            elif col:
                need["patients"].add(col)
        elif isinstance(f, EventFeature):
            cols = need.setdefault(f.source, {"person_id"})
            cols.add(f.date)
            cols.update(w.column for w in f.where)
            cols.update(c for c in (f.end,) if c)
            if f.value:
                cols.update(t for t in re.findall(r"\b([A-Za-z_][A-Za-z0-9_]*)\b(?!\s*\()", f.value)
                            if t.lower() not in _SQL_WORDS)
    return need


def check_sources(con: duckdb.DuckDBPyConnection, fs: FeatureSet, schema: str = "wh") -> None:
    present: dict[str, set[str]] = {}
    for table, column in con.execute("SELECT table_name, column_name FROM information_schema.columns "
                                     "WHERE table_catalog = ?", [schema]).fetchall():
        present.setdefault(table, set()).add(column)
    missing_tables = [t for t in required_columns(fs) if t not in present]
    missing_cols = [f"{t}.{c}" for t, cols in required_columns(fs).items() if t in present
                    for c in sorted(cols) if c not in present[t]]
    if missing_tables or missing_cols:
        parts = []
        if missing_tables:
            parts.append(f"missing source tables: {', '.join(sorted(missing_tables))}")
        if missing_cols:
            parts.append(f"missing columns: {', '.join(missing_cols)}")
        raise FeatureSourceError(f"the {fs.name} feature set cannot be built: {'; '.join(parts)}. "
                                 "Load extracts that provide them (`phm data load`).")


def open_warehouse(warehouse: Path) -> duckdb.DuckDBPyConnection:
    if not warehouse.exists():
        raise FileNotFoundError(f"{warehouse}: no warehouse yet. Run `phm data load SRC_DIR` (or `phm demo`) first.")
    con = duckdb.connect()
    con.execute(f"ATTACH '{warehouse}' AS wh (READ_ONLY)")
    return con


def data_end_of(con: duckdb.DuckDBPyConnection) -> date:
    row = con.execute("""SELECT max(d) FROM (SELECT max(admission_date) AS d FROM wh.apc_spells
                         UNION ALL SELECT max(issue_date) FROM wh.prescriptions
                         UNION ALL SELECT max(CAST(arrival_time AS DATE)) FROM wh.ae_attendances)""").fetchone()
    if row[0] is None:
        raise EmptyCohortError("the warehouse holds no activity, so follow-up cannot be judged")
    return row[0]


def build(warehouse: Path, cfg: BuildConfig, out: Path) -> dict:
    """Build the feature table to `out` (Parquet) and `out` + `.manifest.json`; returns the manifest."""
    started = time.perf_counter()
    fs, cohort_cfg, label_cfg = cfg.resolved()
    dialect = DuckDBDialect()
    table = lambda name: f"wh.{name}"  # noqa: E731
    con = open_warehouse(warehouse)
    try:
        check_sources(con, fs)
        data_end = cfg.data_end or data_end_of(con)
        con.execute(f"CREATE TEMP TABLE cohort_all AS {cohort_sql(cohort_cfg, cfg.index_dates, dialect, table)}")
        excluded = {r: n for r, n in con.execute("SELECT _reason, count(*) FROM cohort_all WHERE _reason IS NOT NULL "
                                                 "GROUP BY 1 ORDER BY 2 DESC").fetchall()}
        eligible = dict(con.execute("SELECT CAST(_idx AS VARCHAR), count(*) FROM cohort_all WHERE _reason IS NULL "
                                    "GROUP BY 1 ORDER BY 1").fetchall())
        if not eligible:
            raise EmptyCohortError(
                f"no one is eligible for {fs.name} at {', '.join(map(str, cfg.index_dates))}"
                f" (excluded: {', '.join(f'{k} {v:,}' for k, v in excluded.items()) or 'no patients loaded'})")
        con.execute("CREATE TEMP TABLE cohort AS SELECT person_id, _idx FROM cohort_all WHERE _reason IS NULL")
        single = cfg.index_dates[0] if len(cfg.index_dates) == 1 else None
        features_sql = FeatureCompiler(dialect, table, index_date=single).compile(fs)
        labels = label_sql(label_cfg, dialect, table, data_end)
        con.execute(f"""CREATE TEMP TABLE result AS SELECT f.*, l.{label_cfg.column}, l.censor_reason
                        FROM ({features_sql}) f JOIN ({labels}) l
                        ON l.person_id = f.person_id AND l._idx = f.index_date
                        ORDER BY f.index_date, f.person_id""")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        con.execute(f"COPY result TO '{tmp}' (FORMAT parquet, COMPRESSION zstd)")
        os.replace(tmp, out)
        manifest = _manifest(con, fs, cfg, cohort_cfg, label_cfg, warehouse, data_end, excluded, eligible, out)
    finally:
        con.close()
    manifest["build_seconds"] = round(time.perf_counter() - started, 2)
    Path(str(out) + ".manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    return manifest


def _manifest(con, fs: FeatureSet, cfg: BuildConfig, cohort_cfg: CohortConfig, label_cfg: LabelConfig,
              warehouse: Path, data_end: date, excluded: dict, eligible: dict, out: Path) -> dict:
    names = [f.name for f in fs.features]
    nulls = con.execute("SELECT " + ", ".join(f"avg(CASE WHEN {n} IS NULL THEN 1 ELSE 0 END)" for n in names)
                        + " FROM result").fetchone()
    col = label_cfg.column
    positives, negatives, censored = con.execute(
        f"SELECT count(*) FILTER (WHERE {col} = 1), count(*) FILTER (WHERE {col} = 0), "
        f"count(*) FILTER (WHERE {col} IS NULL) FROM result").fetchone()
    censor = dict(con.execute("SELECT censor_reason, count(*) FROM result WHERE censor_reason IS NOT NULL "
                              "GROUP BY 1 ORDER BY 1").fetchall())
    try:
        as_of = con.execute("SELECT CAST(as_of AS VARCHAR) FROM wh.load_info").fetchone()[0]
    except duckdb.Error:
        as_of = None
    source = warehouse_source(con, "wh")
    segments = dict(con.execute("SELECT segment, count(*) FROM result GROUP BY 1 ORDER BY 2 DESC").fetchall()) \
        if "segment" in names else {}
    carried = [c for c in fs.carried if not (c == "ethnic_category" and cfg.ethnicity_as_predictor)]
    predictors = [n for n in names if n not in carried]
    return {
        "feature_set": fs.name,
        "description": fs.description,
        "definition_hash": fs.definition_hash(),
        "engine": "duckdb",
        "index_dates": [str(d) for d in cfg.index_dates],
        "warehouse": str(warehouse),
        "warehouse_as_of": as_of,
        "data_source": source,
        "data_end": str(data_end),
        "cohort": {"rules": cohort_cfg.model_dump(), "eligible_by_index_date": eligible, "excluded_by_reason": excluded},
        "label": {"column": col, "rules": label_cfg.model_dump(), "positives": positives, "negatives": negatives,
                  "censored": censored, "censored_by_reason": censor},
        "rows": positives + negatives + censored,
        "segments": segments,
        "ethnicity_as_predictor": cfg.ethnicity_as_predictor,
        "predictors": predictors,
        "carried": carried,
        "null_rates": {n: round(float(v), 4) for n, v in zip(names, nulls)},
        "output": str(out),
    }
