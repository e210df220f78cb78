"""Run a feature build on a named engine for the spec tests: DuckDB, Spark, or the pandas reference engine,
and check the reference engine agrees with an SQL engine's table.

The reference engine computes features only: its run builds on DuckDB for the cohort and labels, checks that
the reference features agree with DuckDB's, and returns the table with the reference engine's features in
place, so every spec assertion about a feature is an assertion about the reference engine too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.build import BuildConfig, build
from features.definitions.model import EventFeature, FeatureSet
from features.reference import reference_features

ENGINES = ["reference", "duckdb", pytest.param("spark", marks=pytest.mark.spark)]
# floating-point results whose summation order differs between implementations: rtol 1e-9, atol 1e-12;
# everything else (counts, days, sums of whole numbers, text) must be identical
ROUNDED = ("mean", "std", "slope")


def run(
    engine: str, warehouse: Path, cfg: BuildConfig, out: Path, request: pytest.FixtureRequest
) -> tuple[pd.DataFrame, dict]:
    """(feature table as written, manifest) of `cfg` on `engine`; the reference engine is checked against the
    SQL engine it runs beside (DuckDB; Spark when the engine is Spark)."""
    if engine == "spark":
        from features.engine.spark_engine import SparkEngine
        from phm.core.settings import Settings

        with SparkEngine(
            Settings(home=out.parent / "spark_home"), warehouse, session=request.getfixturevalue("spark")
        ) as spark:
            manifest = build(spark, cfg, out)
    else:
        manifest = build(warehouse, cfg, out)
    table = pd.read_parquet(out)
    if engine == "duckdb":
        return table, manifest
    ref = reference_features(warehouse, cfg.features, table[["person_id", "index_date"]])
    assert_agree(ref, table, cfg.features)
    if engine == "reference":
        table = table.copy()
        for f in cfg.features.features:
            table[f.name] = ref[f.name].to_numpy()
    return table, manifest


def assert_agree(ref: pd.DataFrame, built: pd.DataFrame, fs: FeatureSet) -> None:
    """Every feature of the reference table equals the built one, row by row (person, index date)."""
    assert len(ref) == len(built) > 0
    assert ref.person_id.tolist() == built.person_id.tolist()
    assert (pd.to_datetime(ref.index_date) == pd.to_datetime(built.index_date)).all()
    wrong = []
    for f in fs.features:
        a, b = ref[f.name].reset_index(drop=True), built[f.name].reset_index(drop=True)
        missing = a.isna().to_numpy()
        if not np.array_equal(missing, b.isna().to_numpy()):
            wrong.append((f.name, "missing values differ", _rows(a, b, missing != b.isna().to_numpy())))
            continue
        if isinstance(f, EventFeature) and f.aggregation in ROUNDED:
            x, y = a[~missing].astype(float).to_numpy(), b[~missing].astype(float).to_numpy()
            same = np.isclose(x, y, rtol=1e-9, atol=1e-12)
        elif pd.api.types.is_numeric_dtype(b):
            x, y = a[~missing].astype(float).to_numpy(), b[~missing].astype(float).to_numpy()
            same = x == y
        else:
            same = a[~missing].astype(str).to_numpy() == b[~missing].astype(str).to_numpy()
        if not same.all():
            bad = np.zeros(len(a), dtype=bool)
            bad[np.flatnonzero(~missing)[~same]] = True
            wrong.append((f.name, "values differ", _rows(a, b, bad)))
    assert not wrong, wrong[:5]


def _rows(a: pd.Series, b: pd.Series, bad: np.ndarray) -> list:
    return [(int(i), a[i], b[i]) for i in np.flatnonzero(bad)[:5]]
