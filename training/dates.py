"""Index dates for training and validation that follow the data, and refusals that name the real cause.

A model's specification gives its default dates as a pattern: training dates (three a year apart, or weekly
ones), then later validation dates. Unless a training configuration names its own dates, the whole pattern moves,
in whole steps of the specification's `TrainingDefaults.step` (months keep the day of the month, weeks the
weekday), so that its last validation date is the latest index date whose follow-up has matured: its whole
horizon lies within the data (index date + horizon <= the day after the data end, as the labels require). On the
synthetic ICS (data to 2025-03-31) that is the specification's own dates; on data ending 2023-10-17 the
emergency-admission model validates on 2022-10-01 and trains on 2019-10-01, 2020-10-01 and 2021-10-01.

Training dates whose features would need history from before the data begin (the feature set's longest look-back)
are dropped; if none is left, or the validation dates themselves lack that history, training is refused with the
dates and the data's span. Configured dates are used as given, but a date after the data end or whose follow-up
runs past it is refused, naming the date, the data end and the latest date that would do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd

from features.definitions.model import EventFeature
from models.specs.base import ModelSpec

STEP_DAYS = {"month": 30.437, "week": 7, "day": 1}


class TrainingDatesError(ValueError):
    """The index dates cannot be trained and validated on this warehouse's data; says which and why."""


@dataclass(frozen=True)
class DataSpan:
    """The days the warehouse's activity covers (admissions, prescriptions, A&E attendances)."""

    start: date
    end: date

    def __str__(self) -> str:
        return f"{self.start} to {self.end}"


def horizon_words(spec: ModelSpec) -> str:
    label = spec.label
    return f"{label.horizon_months}-month" if label.horizon_months else f"{label.horizon_days}-day"


def follow_up_end(spec: ModelSpec, index_date: date) -> date:
    """The first day after an index date's follow-up window `[index_date, index_date + horizon)`."""
    label = spec.label
    if label.horizon_months:
        return (pd.Timestamp(index_date) + pd.DateOffset(months=label.horizon_months)).date()
    return index_date + timedelta(days=label.horizon_days or 0)


def matured(spec: ModelSpec, index_date: date, span: DataSpan) -> bool:
    """Whether the whole follow-up of `index_date` lies within the data (the label's own rule)."""
    return follow_up_end(spec, index_date) <= span.end + timedelta(days=1)


def latest_matured(spec: ModelSpec, span: DataSpan) -> date:
    """The latest index date (any day) whose follow-up has matured."""
    day = span.end + timedelta(days=1) - timedelta(days=spec.horizon_days)
    while not matured(spec, day, span):
        day -= timedelta(days=1)
    while matured(spec, day + timedelta(days=1), span):
        day += timedelta(days=1)
    return day


def lookback_days(spec: ModelSpec) -> int:
    """The longest window any of the model's features looks back over (features over all history excepted)."""
    return max(
        (f.window_days for f in spec.features.features if isinstance(f, EventFeature) and f.window_days), default=0
    )


def shifted(day: date, step: str, k: int) -> date:
    if step == "month":
        return (pd.Timestamp(day) + pd.DateOffset(months=k)).date()
    return day + timedelta(days=k * (7 if step == "week" else 1))


def _fmt(days: list[date]) -> str:
    return ", ".join(map(str, days)) if len(days) <= 4 else f"{days[0]}..{days[-1]} ({len(days)} dates)"


def dates_for_data(spec: ModelSpec, span: DataSpan) -> tuple[list[date], list[date], str]:
    """(training dates, validation dates, a sentence saying how they were chosen) for data covering `span`."""
    d = spec.training
    last = d.validation_dates[-1]
    k = int((span.end - follow_up_end(spec, last)).days // STEP_DAYS[d.step])
    while not matured(spec, shifted(last, d.step, k), span):
        k -= 1
    while matured(spec, shifted(last, d.step, k + 1), span):
        k += 1
    train = [shifted(x, d.step, k) for x in d.train_dates]
    validation = [shifted(x, d.step, k) for x in d.validation_dates]
    history = lookback_days(spec)
    earliest = span.start + timedelta(days=history)
    if validation[0] < earliest:
        raise TrainingDatesError(
            f"the data run from {span}: too short to validate {spec.name}. The latest validation date(s) whose "
            f"{horizon_words(spec)} follow-up lies within the data, {_fmt(validation)}, need {history} days of history "
            f"before them (from {earliest}). Load a longer extract, or name the dates in a training configuration "
            "(--config)."
        )
    kept = [x for x in train if x >= earliest]
    if not kept:
        raise TrainingDatesError(
            f"the data run from {span}: too short to train {spec.name}. Validating on {_fmt(validation)} (the latest "
            f"whose {horizon_words(spec)} follow-up lies within the data), its training dates {_fmt(train)} would "
            f"need {history} days of history before them, but the data begin {span.start}. Load a longer extract, or "
            "name the dates in a training configuration (--config)."
        )
    note = (
        f"dates follow the data ({span}): validation on {_fmt(validation)}, the latest whose "
        f"{horizon_words(spec)} follow-up lies within the data; training on {_fmt(kept)}"
    )
    if len(kept) < len(train):
        dropped = [x for x in train if x < earliest]
        note += f" ({_fmt(dropped)} dropped: less than {history} days of data before them)"
    return kept, validation, note


def check_dates(spec: ModelSpec, train: list[date], validation: list[date], span: DataSpan) -> None:
    """Refuse configured dates the data cannot support, naming the date, the data's span and what would do."""
    latest = latest_matured(spec, span)
    for part, days in (("validation", validation), ("training", train)):
        for day in days:
            if day > span.end:
                raise TrainingDatesError(
                    f"{part} date {day} lies after the data end ({span.end}); the latest index date whose "
                    f"{horizon_words(spec)} follow-up lies within the data is {latest}. Use earlier dates, or leave "
                    "the dates out of the configuration to have them follow the data."
                )
            if not matured(spec, day, span):
                raise TrainingDatesError(
                    f"{part} date {day}: its {horizon_words(spec)} follow-up runs to "
                    f"{follow_up_end(spec, day) - timedelta(days=1)}, past the data end ({span.end}); the latest index "
                    f"date whose follow-up lies within the data is {latest}. Use earlier dates, or leave the dates out "
                    "of the configuration to have them follow the data."
                )
            if day < span.start:
                raise TrainingDatesError(f"{part} date {day} lies before the data begin ({span.start}).")
    if max(train) >= min(validation):
        raise TrainingDatesError(
            f"training dates ({_fmt(train)}) must all lie before the validation dates "
            f"({_fmt(validation)}): validation is on a later period."
        )
