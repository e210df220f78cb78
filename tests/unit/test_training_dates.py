"""Index dates for training and validation follow the data unless configured: each model's pattern moves, in whole
steps, to the latest validation date whose follow-up lies within the data; the synthetic ICS keeps the
specifications' own dates; refusals name the date, the data's span and what would do."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from pydantic import ValidationError

from models import specs
from training.config import TrainConfig, default_config
from training.dates import (
    DataSpan,
    TrainingDatesError,
    check_dates,
    dates_for_data,
    latest_matured,
    lookback_days,
    matured,
)

ICS = DataSpan(date(2019, 4, 1), date(2025, 3, 31))  # the synthetic ICS
SYNTHEA = DataSpan(date(1972, 5, 1), date(2023, 10, 17))  # the public Synthea export of issue 25
EMERGENCY, FLARE = specs.get("emergency_admission"), specs.get("flare_up")


@pytest.mark.parametrize("spec", list(specs.SPECS.values()), ids=list(specs.SPECS))
def test_the_synthetic_ics_keeps_each_specifications_dates(spec) -> None:
    train, validation, note = dates_for_data(spec, ICS)
    assert (train, validation) == (list(spec.training.train_dates), list(spec.training.validation_dates))
    assert all(matured(spec, d, ICS) for d in train + validation) and "follow the data" in note


def test_data_ending_in_2023_moves_the_pattern_back() -> None:
    train, validation, note = dates_for_data(EMERGENCY, SYNTHEA)
    # the latest first-of-month whose 12 months of follow-up end by 2023-10-17, and the three years before it
    assert validation == [date(2022, 10, 1)] and train == [date(2019, 10, 1), date(2020, 10, 1), date(2021, 10, 1)]
    assert matured(EMERGENCY, date(2022, 10, 1), SYNTHEA) and not matured(EMERGENCY, date(2022, 11, 1), SYNTHEA)
    assert "validation on 2022-10-01" in note and "2023-10-17" in note
    train, validation, _ = dates_for_data(FLARE, SYNTHEA)  # moved in whole weeks: Mondays stay Mondays
    assert validation[-1] == date(2023, 10, 2) and {d.weekday() for d in [*train, validation[0]]} == {0}
    assert matured(FLARE, validation[-1], SYNTHEA) and not matured(FLARE, validation[-1] + timedelta(7), SYNTHEA)
    assert len(validation) == len(FLARE.training.validation_dates) and len(train) == len(FLARE.training.train_dates)
    assert validation[0] - train[-1] == FLARE.training.validation_dates[0] - FLARE.training.train_dates[-1]


def test_later_data_moves_it_forward() -> None:
    train, validation, _ = dates_for_data(EMERGENCY, DataSpan(date(2019, 4, 1), date(2026, 4, 29)))
    assert validation == [date(2025, 4, 1)] and train == [date(2022, 4, 1), date(2023, 4, 1), date(2024, 4, 1)]


def test_short_data_drops_training_dates_without_history_and_refuses_when_none_is_left() -> None:
    assert lookback_days(EMERGENCY) == 365
    train, validation, note = dates_for_data(EMERGENCY, DataSpan(date(2020, 5, 1), date(2023, 10, 17)))
    assert train == [date(2021, 10, 1)] and validation == [date(2022, 10, 1)]
    assert "2019-10-01, 2020-10-01 dropped: less than 365 days of data before them" in note
    with pytest.raises(
        TrainingDatesError,
        match=r"data run from 2021-06-01 to 2023-10-17: too short to train "
        r"emergency_admission\. Validating on 2022-10-01",
    ):
        dates_for_data(EMERGENCY, DataSpan(date(2021, 6, 1), date(2023, 10, 17)))
    with pytest.raises(TrainingDatesError, match="too short to validate .* need 365 days of history"):
        dates_for_data(EMERGENCY, DataSpan(date(2022, 6, 1), date(2023, 10, 17)))


def test_configured_dates_are_refused_naming_the_real_cause() -> None:
    assert latest_matured(EMERGENCY, SYNTHEA) == date(2022, 10, 18)
    train = [date(2021, 4, 1), date(2022, 4, 1)]
    with pytest.raises(
        TrainingDatesError,
        match=r"validation date 2024-04-01 lies after the data end \(2023-10-17\); "
        r"the latest index date .* is 2022-10-18",
    ):
        check_dates(EMERGENCY, train, [date(2024, 4, 1)], SYNTHEA)
    with pytest.raises(
        TrainingDatesError,
        match=r"validation date 2023-04-01: its 12-month follow-up runs to "
        r"2024-03-31, past the data end \(2023-10-17\)",
    ):
        check_dates(EMERGENCY, train[:1], [date(2023, 4, 1)], SYNTHEA)
    with pytest.raises(TrainingDatesError, match="must all lie before the validation dates"):
        check_dates(EMERGENCY, [date(2022, 4, 1)], [date(2021, 4, 1)], SYNTHEA)
    check_dates(EMERGENCY, train[:1], [date(2022, 10, 18)], SYNTHEA)  # the latest that will do


def test_configurations_name_both_date_lists_or_neither() -> None:
    cfg = default_config("emergency_admission")
    assert cfg.follows_data and cfg.train_dates is None and cfg.validation_dates is None
    with pytest.raises(ValidationError, match="name both train_dates and validation_dates, or neither"):
        TrainConfig(model_name="emergency_admission", train_dates=[date(2021, 4, 1)])
    given = TrainConfig(model_name="flare_up", train_dates=[date(2023, 7, 3)], validation_dates=[date(2024, 7, 1)])
    assert not given.follows_data
