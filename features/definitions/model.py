"""The feature query model: features declared as data, compiled per engine.

In the spirit of OpenSAFELY's ehrQL, a feature says *what* to compute (source table, filter,
window relative to the index date, aggregation, default when absent) and never *how*: the
compiler in `features.engine` turns definitions into SQL for an engine's dialect.

Window semantics (pinned by spec tests): a window of N days holds events dated
`index_date - N <= date < index_date`. An event on the index date belongs to the outcome
period, never to a predictor.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal, Union

from pydantic import BaseModel, Field, model_validator

Aggregation = Literal[
    "count",  # number of matching events
    "exists",  # 1 if any matching event, else 0
    "count_distinct",  # distinct values of `value`
    "distinct_days",  # distinct event dates
    "sum", "mean", "std", "min", "max",  # of `value`
    "slope",  # least-squares slope of `value` per day
    "last",  # `value` of the latest matching event
    "days_since_last",  # days from the latest matching event to the index date
    "bed_days",  # days in hospital inside the window (spell clipped to the window and the index date)
    "active_at_index",  # 1 if an interval (start, end) covers the index date
]


class Filter(BaseModel):
    """A condition on one column of the source table."""

    column: str
    op: Literal["in", "prefix", "between", "eq"] = "in"
    values: list[str | int | float] = Field(default_factory=list)

    def describe(self) -> str:
        shown = ", ".join(map(str, self.values[:6])) + (" ..." if len(self.values) > 6 else "")
        words = {"in": "is one of", "prefix": "starts with one of", "between": "is between", "eq": "is"}
        return f"{self.column} {words[self.op]} {shown}"


class FeatureBase(BaseModel):
    """What every feature declares: a name, plain-words description and family."""

    name: str
    description: str
    family: str


class EventFeature(FeatureBase):
    """A predictor aggregated from one source table over a window before the index date."""

    kind: Literal["event"] = "event"
    source: str
    date: str  # the column dating each event
    where: list[Filter] = Field(default_factory=list)
    window_days: int | None = None  # None: all history before the index date
    aggregation: Aggregation = "count"
    value: str | None = None  # column aggregated (for value aggregations)
    end: str | None = None  # interval end column (bed_days, active_at_index)
    default: float | None = 0.0

    @model_validator(mode="after")
    def _needs_value(self) -> "EventFeature":
        if self.aggregation in ("count_distinct", "sum", "mean", "std", "min", "max", "slope", "last") and not self.value:
            raise ValueError(f"feature {self.name}: aggregation {self.aggregation} needs a value column")
        if self.aggregation in ("bed_days", "active_at_index") and not self.end:
            raise ValueError(f"feature {self.name}: aggregation {self.aggregation} needs an end column")
        return self

    def describe(self) -> str:
        window = "ever before the index date" if self.window_days is None else \
            f"in the {self.window_days} days before the index date"
        what = {"count": "number of", "exists": "any", "count_distinct": f"distinct {self.value} among",
                "distinct_days": "days with", "sum": f"total {self.value} of", "mean": f"mean {self.value} of",
                "std": f"variability (SD) of {self.value} in", "min": f"lowest {self.value} in",
                "max": f"highest {self.value} in", "slope": f"daily trend of {self.value} in",
                "last": f"latest {self.value} of", "days_since_last": "days since the latest of",
                "bed_days": "bed-days in", "active_at_index": "any active at the index date:"}[self.aggregation]
        cond = f" where {' and '.join(f.describe() for f in self.where)}" if self.where else ""
        return f"{what} {self.source}{cond}, {window}"


class DerivedFeature(FeatureBase):
    """A feature computed from other features (or person attributes) by a portable SQL expression."""

    kind: Literal["derived"] = "derived"
    expression: str  # plain SQL (CASE, arithmetic, GREATEST/LEAST, COALESCE) over earlier names
    depends_on: list[str] = Field(default_factory=list)
    categorical: bool = False


class AttributeFeature(FeatureBase):
    """A person attribute from `patients` (and IMD) as at the index date."""

    kind: Literal["attribute"] = "attribute"
    attribute: Literal["age", "sex", "ethnic_category", "imd_decile", "practice_code", "registered_days"]
    categorical: bool = False


Feature = Union[EventFeature, DerivedFeature, AttributeFeature]


class FeatureSet(BaseModel):
    """A named list of features, with the audit-only columns carried beside them."""

    name: str
    description: str
    features: list[Feature]
    carried: list[str] = Field(default_factory=list, description="Carried for audit, not predictors.")

    def definition_hash(self) -> str:
        """Stable hash of what the features compute (names, sources, filters, windows, aggregations, expressions,
        defaults, in order): a model names exactly which features it was trained on. Descriptions and families are
        words for people, not computation, so rewording them does not change the hash."""
        payload = json.dumps([f.model_dump(mode="json", exclude={"description", "family"}) for f in self.features],
                             sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    @property
    def predictor_names(self) -> list[str]:
        return [f.name for f in self.features if f.name not in self.carried]

    @model_validator(mode="after")
    def _unique_and_ordered(self) -> "FeatureSet":
        seen: set[str] = set()
        for f in self.features:
            if f.name in seen:
                raise ValueError(f"feature set {self.name}: duplicate feature {f.name}")
            if isinstance(f, DerivedFeature):
                missing = [d for d in f.depends_on if d not in seen]
                if missing:
                    raise ValueError(f"feature {f.name} depends on {missing}, which must be declared before it")
            seen.add(f.name)
        return self
