"""The feature query model: features declared as data, compiled per engine.

In the spirit of OpenSAFELY's ehrQL, a feature says *what* to compute (source table, filter,
window relative to the index date, aggregation, default when absent) and never *how*: the
compiler in `features.engine` turns definitions into SQL for an engine's dialect, and the reference engine
(`features.reference`) evaluates them on pandas. Computed values are typed expressions
(`features.definitions.expressions`), never SQL text.

Window semantics (pinned by spec tests): a window of N days holds events dated
`index_date - N <= date < index_date`. An event on the index date belongs to the outcome
period, never to a predictor.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal, Union

from pydantic import BaseModel, Field, field_serializer, field_validator, model_validator

from features.definitions.expressions import IDENTIFIER, Col, Expr, Node, formula

Aggregation = Literal[
    "count",  # number of matching events
    "exists",  # 1 if any matching event, else 0
    "count_distinct",  # distinct values of `value`
    "distinct_days",  # distinct event dates
    "sum",
    "mean",
    "std",
    "min",
    "max",  # of `value`
    "slope",  # least-squares slope of `value` per day
    "last",  # `value` of the latest matching event
    "days_since_last",  # days from the latest matching event to the index date
    "bed_days",  # days in hospital inside the window (spell clipped to the window and the index date)
    "active_at_index",  # 1 if an interval (start, end) covers the index date
]
# names that reach SQL (feature names, tables, columns) are plain identifiers: a name is never SQL text
NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
COUNTS = ("count", "exists", "count_distinct", "distinct_days", "active_at_index")  # no matching event: 0


class Filter(BaseModel):
    """A condition on one column of the source table."""

    column: str = Field(pattern=NAME)
    op: Literal["in", "prefix", "between", "eq"] = "in"
    values: list[str | int | float] = Field(default_factory=list)

    def describe(self) -> str:
        shown = ", ".join(map(str, self.values[:6])) + (" ..." if len(self.values) > 6 else "")
        words = {"in": "is one of", "prefix": "starts with one of", "between": "is between", "eq": "is"}
        return f"{self.column} {words[self.op]} {shown}"


class FeatureBase(BaseModel):
    """What every feature declares: a name, plain-words description and family."""

    name: str = Field(pattern=NAME)
    description: str
    family: str


class EventFeature(FeatureBase):
    """A predictor aggregated from one source table over a window before the index date."""

    kind: Literal["event"] = "event"
    source: str = Field(pattern=NAME)
    date: str = Field(pattern=NAME)  # the column dating each event
    where: list[Filter] = Field(default_factory=list)
    window_days: int | None = None  # None: all history before the index date
    aggregation: Aggregation = "count"
    value: Expr | None = None  # what is aggregated (for value aggregations): a column name or an expression
    end: str | None = Field(None, pattern=NAME)  # interval end column (bed_days, active_at_index)
    default: float | None = 0.0

    @field_validator("value", mode="before")
    @classmethod
    def _column_name(cls, value: object) -> object:
        if isinstance(value, str):
            if not IDENTIFIER.fullmatch(value):
                raise ValueError(f"value {value!r}: give a column name or a typed expression (no SQL text)")
            return Col(name=value)
        return value

    @field_serializer("value")
    def _dump_value(self, value: Node | None) -> object:
        return value.name if isinstance(value, Col) else value  # a plain column stays a name

    @property
    def value_text(self) -> str | None:
        return None if self.value is None else formula(self.value)

    @model_validator(mode="after")
    def _needs_value(self) -> "EventFeature":
        if self.aggregation in COUNTS and self.default != 0:
            raise ValueError(
                f"feature {self.name}: a {self.aggregation} of no matching events is 0, so its default "
                f"must be 0 (not {self.default})"
            )
        if (
            self.aggregation in ("count_distinct", "sum", "mean", "std", "min", "max", "slope", "last")
            and not self.value
        ):
            raise ValueError(f"feature {self.name}: aggregation {self.aggregation} needs a value column")
        if self.aggregation in ("bed_days", "active_at_index") and not self.end:
            raise ValueError(f"feature {self.name}: aggregation {self.aggregation} needs an end column")
        return self

    def describe(self) -> str:
        window = (
            "ever before the index date"
            if self.window_days is None
            else f"in the {self.window_days} days before the index date"
        )
        v = self.value_text
        what = {
            "count": "number of",
            "exists": "any",
            "count_distinct": f"distinct {v} among",
            "distinct_days": "days with",
            "sum": f"total {v} of",
            "mean": f"mean {v} of",
            "std": f"variability (SD) of {v} in",
            "min": f"lowest {v} in",
            "max": f"highest {v} in",
            "slope": f"daily trend of {v} in",
            "last": f"latest {v} of",
            "days_since_last": "days since the latest of",
            "bed_days": "bed-days in",
            "active_at_index": "any active at the index date:",
        }[self.aggregation]
        cond = f" where {' and '.join(f.describe() for f in self.where)}" if self.where else ""
        return f"{what} {self.source}{cond}, {window}"


class DerivedFeature(FeatureBase):
    """A feature computed from earlier features (or person attributes) by a typed expression."""

    kind: Literal["derived"] = "derived"
    expression: Expr  # over earlier feature names only
    depends_on: list[str] = Field(default_factory=list)
    categorical: bool = False

    @model_validator(mode="after")
    def _reads_what_it_declares(self) -> "DerivedFeature":
        undeclared = sorted(self.expression.columns() - set(self.depends_on))
        if undeclared:
            raise ValueError(f"feature {self.name}: its expression reads {undeclared}, not in depends_on")
        return self


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
        payload = json.dumps([_computation(f) for f in self.features], sort_keys=True)
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


def _computation(f: Feature) -> dict:
    """What a feature computes, for the hash: expressions as their canonical text (so the hash of a definition
    does not depend on how its expression is stored)."""
    out = f.model_dump(mode="json", exclude={"description", "family"})
    if isinstance(f, DerivedFeature):
        out["expression"] = formula(f.expression)
    elif isinstance(f, EventFeature):
        out["value"] = f.value_text
    return out
