"""Batch scoring on Spark: the calibrated risk model (and its reasons) applied where the rows are.

`mapInPandas` hands each executor batches of rows as pandas frames; the model (shipped once per task
with the function) scores them exactly as in-process scoring does — same predictors, same float64
values, same LightGBM code — so the scores equal in-process scores. Each task predicts on one
LightGBM thread: Spark runs one task per core.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pandas as pd

from models.explain import reasons
from models.risk import GradientBoostedRisk


def _schema(frame: Any, keep: list[str], extra: str) -> str:
    fields = {f.name: f.dataType.simpleString() for f in frame.schema.fields}
    return ", ".join([f"{c} {fields[c]}" for c in keep] + [extra])


def score_spark(frame: Any, model: GradientBoostedRisk, keep: list[str], column: str = "risk") -> Any:
    """`frame`'s `keep` columns plus the model's risk (double) for every row, computed on the executors."""
    names = list(model.feature_names_in_)
    model = copy.copy(model).use_threads(1)

    def predict(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for part in batches:
            risk = model.predict_proba(part[names].astype("float64"))[:, 1] if len(part) else []
            yield part[keep].assign(**{column: risk})

    wanted = list(dict.fromkeys([*keep, *names]))
    return frame.select(*wanted).mapInPandas(predict, _schema(frame, keep, f"{column} double"))


def explain_spark(frame: Any, model: GradientBoostedRisk, keep: list[str], top: int = 3,
                  column: str = "reasons") -> Any:
    """`frame`'s `keep` columns plus each row's top reasons as JSON text (as `models.explain.reasons`)."""
    names = list(model.feature_names_in_)
    model = copy.copy(model).use_threads(1)

    def explain(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for part in batches:
            found = reasons(model, part[names].astype("float64"), top) if len(part) else []
            yield part[keep].assign(**{column: [json.dumps(r) for r in found]})

    wanted = list(dict.fromkeys([*keep, *names]))
    return frame.select(*wanted).mapInPandas(explain, _schema(frame, keep, f"{column} string"))
