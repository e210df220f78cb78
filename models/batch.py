"""Batch scoring on Spark: the calibrated risk model (and its reasons) applied where the rows are.

`mapInPandas` hands each executor batches of rows as pandas frames; the model (shipped once per task
with the function) scores them exactly as in-process scoring does — same predictors, same float64
values, same LightGBM code — so the scores equal in-process scores. Each task predicts on one
LightGBM thread: Spark runs one task per core.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd

from models.explain import reasons
from models.risk import GradientBoostedRisk


def _per_row(
    frame: Any,
    model: GradientBoostedRisk,
    keep: list[str],
    column: str,
    spark_type: str,
    compute: Callable[[GradientBoostedRisk, pd.DataFrame], list],
) -> Any:
    """`frame`'s `keep` columns plus `column`, `compute(model, predictors)` of each batch on the executors."""
    names = list(model.feature_names_in_)
    model = copy.copy(model).use_threads(1)

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for part in batches:
            values = compute(model, part[names].astype("float64")) if len(part) else []
            yield part[keep].assign(**{column: values})

    fields = {f.name: f.dataType.simpleString() for f in frame.schema.fields}
    schema = ", ".join([f"{c} {fields[c]}" for c in keep] + [f"{column} {spark_type}"])
    return frame.select(*dict.fromkeys([*keep, *names])).mapInPandas(run, schema)


def score_spark(frame: Any, model: GradientBoostedRisk, keep: list[str], column: str = "risk") -> Any:
    """`frame`'s `keep` columns plus the model's risk (double) for every row, computed on the executors."""
    return _per_row(frame, model, keep, column, "double", lambda m, X: m.predict_proba(X)[:, 1])


def explain_spark(
    frame: Any, model: GradientBoostedRisk, keep: list[str], top: int = 3, column: str = "reasons"
) -> Any:
    """`frame`'s `keep` columns plus each row's top reasons as JSON text (as `models.explain.reasons`)."""
    return _per_row(frame, model, keep, column, "string", lambda m, X: [json.dumps(r) for r in reasons(m, X, top)])
