"""Typed configuration of the training jobs."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from models.risk import BoostingParams


def weekly(first: date, last: date, step_days: int = 7) -> list[date]:
    out, d = [], first
    while d <= last:
        out.append(d)
        d += timedelta(days=step_days)
    return out


class TuningGrid(BaseModel):
    """The small set of hyperparameters tuned on the training period only."""

    num_leaves: list[int] = Field(default_factory=lambda: [15, 31])
    min_child_samples: list[int] = Field(default_factory=lambda: [50, 200])


class TrainConfig(BaseModel):
    """One training job: which model, which periods, which settings."""

    model_name: Literal["emergency_admission", "flare_up"]
    feature_set: str
    train_dates: list[date] = Field(min_length=1, description="Index dates of the training period")
    validation_dates: list[date] = Field(min_length=1, description="Later index dates (temporal validation)")
    seed: int = 1
    base: BoostingParams = Field(default_factory=BoostingParams)
    grid: TuningGrid = Field(default_factory=TuningGrid)
    calibration: Literal["sigmoid", "isotonic"] = "sigmoid"
    bootstrap_draws: int = Field(200, ge=10)
    max_train_rows: int | None = Field(None, description="Sample the training rows (benchmarks, quick runs)")
    max_tuning_rows: int = Field(250_000, ge=1_000, description="Tune on at most this many fit rows")
    refit_below_rows: int = Field(500_000, description="Refit on fit + stopping rows when there are fewer fit rows")
    experiment: str | None = None

    @property
    def label(self) -> str:
        return {"emergency_admission": "label_emergency_admission_12m", "flare_up": "label_exacerbation_14d"}[
            self.model_name]


RISING_FAMILIES = {"hospital use", "A&E", "long-term conditions", "frailty", "medicines", "community and mental health",
                   "wider determinants", "respiratory", "outpatients"}


def monotone_directions(feature_set: str) -> dict[str, int]:
    """Clinically expected directions: more prior use, conditions or frailty never lowers the risk;
    more days since the last event, or a less deprived area, never raises it."""
    from features.definitions.catalogue import FEATURE_SETS

    out = {}
    for f in FEATURE_SETS[feature_set].features:
        if f.name.startswith("days_since") or f.name == "imd_decile":
            out[f.name] = -1
        elif f.family in RISING_FAMILIES and f.name != "outpatient_attendances_12m":
            out[f.name] = 1
        elif f.name == "core20":
            out[f.name] = 1
    return out


def default_config(model_name: str, seed: int = 1) -> TrainConfig:
    """Temporal validation on the synthetic ICS: train on earlier index dates, validate on a later one."""
    if model_name == "emergency_admission":
        return TrainConfig(model_name="emergency_admission", feature_set="emergency_admission", seed=seed,
                           train_dates=[date(2021, 4, 1), date(2022, 4, 1), date(2023, 4, 1)],
                           validation_dates=[date(2024, 4, 1)],
                           base=BoostingParams(monotone=monotone_directions("emergency_admission")),
                           grid=TuningGrid(num_leaves=[7, 15, 31], min_child_samples=[50, 200]))
    if model_name == "flare_up":
        return TrainConfig(model_name="flare_up", feature_set="flare_up", seed=seed,
                           train_dates=weekly(date(2023, 7, 3), date(2024, 6, 10)),
                           validation_dates=weekly(date(2024, 7, 1), date(2025, 3, 17), step_days=1),
                           grid=TuningGrid(num_leaves=[7, 15], min_child_samples=[50, 100]))
    raise ValueError(f"unknown model {model_name!r}: choose emergency_admission or flare_up")
