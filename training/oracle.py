"""The generator's true risk as a score to audit (synthetic data only).

The true probability of the outcome is the best any model of that outcome can do: perfectly calibrated in every
group by construction. Auditing it shows what no model trained on the same outcome can fix, for example an
access barrier that makes a group's emergency admissions an under-count of its need (need at equal score)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from evaluation.fairness.groups import audit_frame, standard_labels
from features.build import build
from models import specs
from phm.core.settings import Settings


class NoGroundTruth(ValueError):
    """The warehouse holds no generator truth for this model (not synthetic data)."""


def oracle_audit_frame(settings: Settings, model: str, index_date: date, out: Path) -> pd.DataFrame:
    """Features as at `index_date` (built to `out`), with the true probability as `risk`: the table a model
    audit reads (outcome, risk, groups, coverage and need measures), group labels added."""
    spec = specs.get(model)
    if spec.truth is None:
        raise NoGroundTruth(f"{model} has no ground truth in the generator")
    build(settings.warehouse_path, spec.build_config([index_date]), out)
    features = pd.read_parquet(out)
    features = features[features[spec.label_column].notna()].reset_index(drop=True)
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if spec.truth.table not in tables:
            raise NoGroundTruth(f"{settings.warehouse_path} has no table {spec.truth.table} (not synthetic data)")
        truth = con.execute(
            f'SELECT person_id, CAST("{spec.truth.date_column}" AS TIMESTAMP) '
            f"+ INTERVAL {int(spec.truth.day_offset)} DAY AS index_date, p_true "
            f'FROM "{spec.truth.table}"'
        ).df()
    finally:
        con.close()
    keys = features[["person_id", "index_date"]].assign(index_date=lambda f: pd.to_datetime(f.index_date))
    truth["index_date"] = pd.to_datetime(truth.index_date)
    merged = keys.merge(truth, on=["person_id", "index_date"], how="left")
    if merged.p_true.isna().any():
        raise NoGroundTruth(f"{int(merged.p_true.isna().sum()):,} people have no true risk at {index_date}")
    return standard_labels(audit_frame(features, spec.label_column, merged.p_true.to_numpy()))
