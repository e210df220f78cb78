"""Typed configuration of the training jobs."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from phm.core.config import Document, Strict

from features.definitions.model import FeatureSet
from models import specs
from models.risk import BoostingParams
from models.specs.base import ModelSpec


class TuningGrid(Strict):
    """The small set of hyperparameters tuned on the training period only (at least one value each, within what
    `BoostingParams` allows: the grid's values are copied into it unchecked)."""

    num_leaves: list[Annotated[int, Field(ge=2)]] = Field(default_factory=lambda: [15, 31], min_length=1)
    min_child_samples: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [50, 200], min_length=1)


class TrainConfig(Document):
    """One training job: which model, which periods, which settings."""

    model_name: str = Field(description="A model of `models.specs` (its registered name)")
    train_dates: list[date] | None = Field(
        None,
        min_length=1,
        description="Index dates of the training period (none: the specification's pattern, following the data)",
    )
    validation_dates: list[date] | None = Field(
        None,
        min_length=1,
        description="Later index dates (temporal validation; none: the latest whose follow-up lies within the data)",
    )
    seed: int = 1
    base: BoostingParams = Field(default_factory=BoostingParams)
    grid: TuningGrid = Field(default_factory=TuningGrid)
    calibration: Literal["sigmoid", "isotonic"] = "sigmoid"
    bootstrap_draws: int = Field(200, ge=10)
    max_train_rows: int | None = Field(None, ge=1, description="Sample the training rows (benchmarks, quick runs)")
    max_tuning_rows: int = Field(250_000, ge=1_000, description="Tune on at most this many fit rows")
    refit_below_rows: int = Field(500_000, description="Refit on fit + stopping rows when there are fewer fit rows")
    experiment: str | None = None
    safe_learning: Literal["off", "holdout", "enrolment"] = Field(
        "off",
        description="Learning safely when the model changes care (training.safe_learning): 'holdout' drops "
        "the listed people the programme may have treated and up-weights the random holdout; 'enrolment' drops the "
        "enrolled and up-weights the other listed; 'off' trains on everyone (learns the programme's success as "
        "lower risk).",
    )

    @field_validator("model_name")
    @classmethod
    def _known(cls, value: str) -> str:
        return specs.get(value).name

    @field_validator("train_dates", "validation_dates")
    @classmethod
    def _distinct(cls, days: list[date] | None) -> list[date] | None:
        """A date named twice would build every person's row at it again (duplicated people: double weight in
        training, a validation population that looks larger than it is)."""
        repeated = sorted({d for d in days or [] if days.count(d) > 1})
        if repeated:
            raise ValueError(f"{', '.join(map(str, repeated))} named more than once; name each index date once")
        return days

    @model_validator(mode="after")
    def _both_or_neither(self) -> "TrainConfig":
        if (self.train_dates is None) != (self.validation_dates is None):
            raise ValueError("name both train_dates and validation_dates, or neither (then they follow the data)")
        return self

    @property
    def follows_data(self) -> bool:
        """No dates configured: they are chosen from the warehouse's data when the job runs."""
        return self.train_dates is None

    @property
    def spec(self) -> ModelSpec:
        return specs.get(self.model_name)

    @property
    def label(self) -> str:
        return self.spec.label_column


RISING_FAMILIES = {
    "hospital use",
    "A&E",
    "long-term conditions",
    "frailty",
    "medicines",
    "community and mental health",
    "wider determinants",
    "respiratory",
    "outpatients",
}


def monotone_directions(features: FeatureSet) -> dict[str, int]:
    """Clinically expected directions: more prior use, conditions or frailty never lowers the risk;
    more days since the last event, or a less deprived area, never raises it."""
    out = {}
    for f in features.features:
        if f.name.startswith("days_since") or f.name == "imd_decile":
            out[f.name] = -1
        elif f.family in RISING_FAMILIES and f.name != "outpatient_attendances_12m":
            out[f.name] = 1
        elif f.name == "core20":
            out[f.name] = 1
    return out


def default_config(model_name: str, seed: int = 1) -> TrainConfig:
    """The model's training defaults from its specification. Its index dates are left to follow the data
    (`training.dates`: the specification's pattern, moved to the latest validation date whose follow-up has
    matured, when the job runs); temporal validation: train on earlier index dates, validate on later ones."""
    spec = specs.get(model_name)
    d = spec.training
    return TrainConfig(
        model_name=spec.name,
        seed=seed,
        base=BoostingParams(monotone=monotone_directions(spec.features)) if d.monotone else BoostingParams(),
        grid=TuningGrid(num_leaves=list(d.num_leaves), min_child_samples=list(d.min_child_samples)),
    )
