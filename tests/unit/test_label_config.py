"""A label's horizon is one positive span: no horizon (an empty window: every label 0, nothing censored) and two
horizons (the days silently ignored beside the default 12 months) are errors naming the field; days alone mean days."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from features.cohorts import LabelConfig
from models import specs


def test_days_alone_are_a_horizon_in_days() -> None:
    assert LabelConfig(horizon_days=14).column == "label_emergency_14d"
    assert LabelConfig.model_validate({"outcome": "exacerbation", "horizon_days": 14}).horizon_months is None
    assert LabelConfig().column == "label_emergency_12m"
    assert [s.label.column for s in specs.SPECS.values()] == [
        "label_emergency_12m",
        "label_exacerbation_14d",
        "label_acsc_12m",
    ]


@pytest.mark.parametrize(
    "horizon, message",
    [
        ({"horizon_months": None}, "give one horizon"),
        ({"horizon_months": 0}, "horizon_months must be a positive"),
        ({"horizon_months": 12, "horizon_days": 14}, "give one horizon"),
        ({"horizon_months": -3}, "horizon_months must be a positive"),
        ({"horizon_days": -5}, "horizon_days must be a positive"),
        ({"horizon_days": 0}, "horizon_days must be a positive"),
    ],
)
def test_no_horizon_or_two_is_an_error(horizon: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LabelConfig.model_validate(horizon)
