"""Build a feature table (with labels) from the linked tables and write it with its manifest.

On DuckDB the warehouse is attached read-only (many readers may build at once); on Spark the same
SQL runs on the cluster's tables. The Parquet output is written beside its destination and moved
into place, so a failed build leaves no partial file.
"""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path

import pandas as pd
from pydantic import Field, field_validator

from phm.core.config import Document

from features.cohorts import CohortConfig, LabelConfig, cohort_sql, label_sql
from features.definitions.model import AttributeFeature, EventFeature, FeatureSet
from features.engine.base import Engine, check_output
from features.engine.compiler import FeatureCompiler
from features.engine.duckdb_engine import DuckDBEngine
from features.sources.extracts import source_description


class FeatureSourceError(ValueError):
    """A source table or column the feature set needs is missing from the warehouse."""


class EmptyCohortError(ValueError):
    """No one is eligible at the requested index dates."""


class BuildConfig(Document):
    """What to build: a feature set at one or more index dates, with its cohort and label rules (a model
    specification makes one: `models.specs.get(name).build_config(dates)`)."""

    features: FeatureSet
    index_dates: list[date] = Field(min_length=1)
    cohort: CohortConfig
    label: LabelConfig
    ethnicity_as_predictor: bool = Field(False, description="Use ethnicity as a predictor (recorded in the manifest)")
    data_end: date | None = Field(None, description="Last day of data; default: the latest activity in the warehouse")

    @field_validator("index_dates")
    @classmethod
    def _distinct(cls, days: list[date]) -> list[date]:
        """Each index date once: a repeated one would repeat every person's rows (joined per date, squared)."""
        repeated = sorted({d for d in days if days.count(d) > 1})
        if repeated:
            raise ValueError(f"index dates {', '.join(map(str, repeated))} named more than once")
        return days

    def resolved(self) -> tuple[FeatureSet, CohortConfig, LabelConfig]:
        return self.features, self.cohort, self.label


def required_columns(fs: FeatureSet) -> dict[str, set[str]]:
    """Source table -> columns the feature set reads."""
    need: dict[str, set[str]] = {
        "patients": {
            "person_id",
            "year_of_birth",
            "month_of_birth",
            "registration_start",
            "registration_end",
            "date_of_death",
        }
    }
    for f in fs.features:
        if isinstance(f, AttributeFeature):
            col = {"imd_decile": None, "age": None, "registered_days": "registration_start"}.get(
                f.attribute, f.attribute
            )
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
            if f.value is not None:
                cols.update(f.value.columns())
    return need


def check_sources(present: dict[str, set[str]], fs: FeatureSet) -> None:
    missing_tables = [t for t in required_columns(fs) if t not in present]
    missing_cols = [
        f"{t}.{c}"
        for t, cols in required_columns(fs).items()
        if t in present
        for c in sorted(cols)
        if c not in present[t]
    ]
    if missing_tables or missing_cols:
        parts = []
        if missing_tables:
            parts.append(f"missing source tables: {', '.join(sorted(missing_tables))}")
        if missing_cols:
            parts.append(f"missing columns: {', '.join(missing_cols)}")
        raise FeatureSourceError(
            f"the {fs.name} feature set cannot be built: {'; '.join(parts)}. "
            "Load extracts that provide them (`phm data load`)."
        )


def data_end_of(engine: Engine) -> date:
    """The last day of activity (admissions, prescriptions, A&E attendances)."""
    return data_span_of(engine)[1]


def data_span_of(engine: Engine) -> tuple[date, date]:
    """The first and last days of activity (admissions, prescriptions, A&E attendances)."""
    t = engine.table
    row = engine.rows(f"""SELECT min(lo), max(hi) FROM (
                          SELECT min(admission_date) AS lo, max(admission_date) AS hi FROM {t("apc_spells")}
                          UNION ALL SELECT min(issue_date), max(issue_date) FROM {t("prescriptions")}
                          UNION ALL SELECT min(CAST(arrival_time AS DATE)), max(CAST(arrival_time AS DATE))
                          FROM {t("ae_attendances")}) m""")
    if row[0][1] is None:
        raise EmptyCohortError("the warehouse holds no activity, so follow-up cannot be judged")
    lo, hi = row[0]
    return _day(lo), _day(hi)


def _day(value) -> date:
    return value.date() if hasattr(value, "date") and callable(value.date) else value


def build(source: Path | Engine, cfg: BuildConfig, out: Path) -> dict:
    """Build the feature table to `out` (Parquet: a file on DuckDB, a folder of parts on Spark) and
    `out` + `.manifest.json`; returns the manifest. `source` is a DuckDB warehouse file or an open engine."""
    started = time.perf_counter()
    check_output(out)  # before any work: a folder of other files is refused, never replaced
    fs, cohort_cfg, label_cfg = cfg.resolved()
    engine = DuckDBEngine(source) if isinstance(source, Path) else source
    dialect, table = engine.dialect, engine.table
    try:
        present = engine.columns()  # read once: on Spark each table's schema is a file read
        check_sources(present, fs)
        data_end = cfg.data_end or data_end_of(engine)
        parts, everyone = cohort_sql(cohort_cfg, cfg.index_dates, dialect, table)
        for name, sql in parts:
            engine.materialize(name, sql)
        engine.view("cohort_all", everyone)  # patients x dates rows: streamed twice, never stored
        excluded = {
            r: n
            for r, n in engine.rows(
                "SELECT _reason, count(*) AS n FROM cohort_all WHERE _reason IS NOT NULL "
                "GROUP BY _reason ORDER BY n DESC, _reason"
            )
        }
        engine.materialize("cohort", "SELECT person_id, _idx FROM cohort_all WHERE _reason IS NULL")
        eligible = dict(
            engine.rows(f"SELECT {dialect.as_text('_idx')} AS d, count(*) AS n FROM cohort GROUP BY _idx ORDER BY d")
        )
        if not eligible:
            raise EmptyCohortError(
                f"no one is eligible for {fs.name} at {', '.join(map(str, cfg.index_dates))}"
                f" (excluded: {', '.join(f'{k} {v:,}' for k, v in excluded.items()) or 'no patients loaded'})"
            )
        single = cfg.index_dates[0] if len(cfg.index_dates) == 1 else None
        features_sql = FeatureCompiler(dialect, table, index_date=single).compile(fs)
        labels = label_sql(label_cfg, dialect, table, data_end)
        engine.write_parquet(
            f"""SELECT f.*, l.{label_cfg.column}, l.censor_reason, l.died_in_follow_up
                                 FROM ({features_sql}) f JOIN ({labels}) l
                                 ON l.person_id = f.person_id AND l._idx = f.index_date""",
            ["index_date", "person_id"],
            out,
        )
        engine.read_parquet("result", out)  # the manifest describes the file as written
        manifest = _manifest(
            engine, fs, cfg, cohort_cfg, label_cfg, data_end, excluded, eligible, out, "load_info" in present
        )
    finally:
        if engine is not source:
            engine.close()
    manifest["build_seconds"] = round(time.perf_counter() - started, 2)
    Path(str(out) + ".manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    return manifest


def _manifest(
    engine: Engine,
    fs: FeatureSet,
    cfg: BuildConfig,
    cohort_cfg: CohortConfig,
    label_cfg: LabelConfig,
    data_end: date,
    excluded: dict,
    eligible: dict,
    out: Path,
    has_load_info: bool,
) -> dict:
    names = [f.name for f in fs.features]
    nulls = engine.rows(
        "SELECT "
        + ", ".join(f"avg(CASE WHEN {n} IS NULL THEN 1.0 ELSE 0.0 END) AS {n}" for n in names)
        + " FROM result"
    )[0]
    col = label_cfg.column
    positives, negatives, censored = engine.rows(
        f"SELECT sum(CASE WHEN {col} = 1 THEN 1 ELSE 0 END) AS pos, sum(CASE WHEN {col} = 0 THEN 1 ELSE 0 END) AS neg, "
        f"sum(CASE WHEN {col} IS NULL THEN 1 ELSE 0 END) AS cens FROM result"
    )[0]
    censor = dict(
        engine.rows(
            "SELECT censor_reason, count(*) AS n FROM result WHERE censor_reason IS NOT NULL "
            "GROUP BY censor_reason ORDER BY censor_reason"
        )
    )
    info = _load_info(engine) if has_load_info else {}
    segments = (
        dict(engine.rows("SELECT segment, count(*) AS n FROM result GROUP BY segment ORDER BY n DESC, segment"))
        if "segment" in names
        else {}
    )
    carried = [c for c in fs.carried if not (c == "ethnic_category" and cfg.ethnicity_as_predictor)]
    predictors = [n for n in names if n not in carried]
    return {
        "feature_set": fs.name,
        "description": fs.description,
        "definition_hash": fs.definition_hash(),
        "engine": engine.name,
        "index_dates": [str(d) for d in cfg.index_dates],
        "warehouse": engine.location,
        "warehouse_as_of": info.get("as_of"),
        "data_source": source_description(info.get("source_format"), bool(info.get("synthetic"))),
        "data_end": str(data_end),
        "cohort": {
            "rules": cohort_cfg.model_dump(),
            "eligible_by_index_date": eligible,
            "excluded_by_reason": excluded,
        },
        "label": {
            "column": col,
            "rules": label_cfg.rules(),
            "positives": int(positives or 0),
            "negatives": int(negatives or 0),
            "censored": int(censored or 0),
            "censored_by_reason": censor,
        },
        "rows": int((positives or 0) + (negatives or 0) + (censored or 0)),
        "segments": segments,
        "ethnicity_as_predictor": cfg.ethnicity_as_predictor,
        "predictors": predictors,
        "carried": carried,
        "null_rates": {n: round(float(v), 4) for n, v in zip(names, nulls)},
        "output": str(out),
    }


def _load_info(engine: Engine) -> dict:
    """The loader's record of the warehouse (as-of date, source format)."""
    frame = engine.frame(f"SELECT * FROM {engine.table('load_info')}")
    if frame.empty:
        return {}
    row = frame.iloc[0].to_dict()
    if row.get("as_of") is not None:
        row["as_of"] = str(pd.Timestamp(row["as_of"]).date())
    return row
