"""What a model specification holds: everything that makes one risk model what it is, in one place.

A model is described once, in its own module under `models/specs/` (its feature set, cohort, label,
horizon, simple-rule baseline, the generator's ground-truth table, model-card text, training defaults and how
the daily job uses it). Jobs, pages and reports read the specification; none names a model. Adding a model is
one new specification module (plus any new features it needs) and one line in `models/specs/__init__.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

import numpy as np
import pandas as pd

from features.build import BuildConfig
from features.cohorts import CohortConfig, LabelConfig
from features.definitions.model import FeatureSet


@dataclass(frozen=True)
class BaselineRule:
    """The simple comparator a clinician would use without a model (reported beside the model's metrics)."""

    title: str
    score: Callable[[pd.DataFrame], np.ndarray]


@dataclass(frozen=True)
class Truth:
    """Where the synthetic generator keeps each person's true probability of the outcome (synthetic data only):
    a warehouse table of (person_id, `date_column`, p_true); `day_offset` days are added to the date to give the
    index date it belongs to (a probability at the end of a day belongs to the next index date)."""

    table: str
    date_column: str = "index_date"
    day_offset: int = 0


@dataclass(frozen=True)
class TrainingDefaults:
    """Default index dates (temporal validation: validate on later dates than training) and tuning grid.

    The dates are a pattern: unless a training configuration names its own, the whole pattern moves in whole
    `step`s (months keep the day of the month, weeks the weekday) until its last validation date is the latest
    index date whose follow-up lies within the warehouse's data (`training.dates`)."""

    train_dates: tuple[date, ...]
    validation_dates: tuple[date, ...]
    step: Literal["month", "week", "day"] = "month"
    num_leaves: tuple[int, ...] = (15, 31)
    min_child_samples: tuple[int, ...] = (50, 200)
    monotone: bool = False  # constrain clinically expected directions (more prior use never lowers risk)


@dataclass(frozen=True)
class DailyUse:
    """How the daily job uses the model: `worklist` ranks everyone into bands (top shares, highest first) and
    explains those in a band; `column` adds the model's risk as a column of the worklist. `bands` and `top_share`
    are defaults of the operating policy, which an installation may change (`[policy.<model>]` in phm.toml; see
    `models.specs.policy`) only with a safety officer's approval of the change."""

    kind: Literal["worklist", "column"]
    bands: tuple[tuple[str, float], ...] = ()
    column: str | None = None
    title: str = ""
    rank_title: str = ""  # a column model: the worklist's order by it, e.g. "most likely to flare up first"
    top_share: float | None = None  # the share acted on; a worklist model's default is its last band's cut-off


@dataclass(frozen=True)
class ModelSpec:
    """One risk model. `name` is its registered name in MLflow and its name on the command line (with hyphens)."""

    name: str
    title: str
    outcome: str  # plain words: "an emergency admission within 12 months"
    features: FeatureSet
    cohort: CohortConfig
    label: LabelConfig
    horizon_days: int
    baseline: BaselineRule
    intended_use: str
    training: TrainingDefaults
    daily: DailyUse
    truth: Truth | None = None
    validation_extras: Callable[..., tuple[dict, dict]] | None = None  # (card section, metrics) after validation
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def cli_name(self) -> str:
        return self.name.replace("_", "-")

    @property
    def label_column(self) -> str:
        return self.label.column

    @property
    def person_days(self) -> bool:
        """Several rows per person when validated on several index dates (the audit bootstraps by person)."""
        return len(self.training.validation_dates) > 1

    def build_config(self, index_dates: list[date], **overrides: Any) -> BuildConfig:
        """The feature build of this model as at `index_dates` (cohort, label and others may be overridden)."""
        return BuildConfig(
            features=self.features,
            index_dates=list(index_dates),
            cohort=overrides.pop("cohort", None) or self.cohort,
            label=overrides.pop("label", None) or self.label,
            **overrides,
        )
