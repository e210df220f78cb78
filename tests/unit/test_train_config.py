"""Training configurations a data scientist writes by hand (`phm train --config`): an index date named twice is
refused naming the field and the date. It had built every person's rows at that date again (four copies from the
build's per-date joins): duplicated people weighing double in training, and a validation population, with its
audit's groups, that looked larger than it is."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from features.build import BuildConfig
from models import specs
from training.config import TrainConfig, default_config

D1, D2, D3 = date(2021, 4, 1), date(2022, 4, 1), date(2024, 4, 1)


@pytest.mark.parametrize(
    "train, validation, field",
    [([D1, D1, D2], [D3], "train_dates"), ([D1, D2], [D3, D3], "validation_dates")],
)
def test_a_date_named_twice_is_refused(train, validation, field: str) -> None:
    raw = {"model_name": "emergency_admission", "train_dates": train, "validation_dates": validation}
    with pytest.raises(ValidationError) as caught:
        TrainConfig.model_validate(raw)
    assert caught.value.errors()[0]["loc"] == (field,) and "named more than once" in str(caught.value)
    assert str(D1 if field == "train_dates" else D3) in str(caught.value)


def test_the_build_refuses_a_repeated_index_date() -> None:
    spec = specs.get("emergency_admission")
    with pytest.raises(ValidationError, match="2021-04-01 named more than once"):
        spec.build_config([D1, D2, D1])
    assert isinstance(spec.build_config([D1, D2]), BuildConfig)


def test_distinct_dates_and_the_defaults_still_validate() -> None:
    cfg = TrainConfig.model_validate({"model_name": "flare_up", "train_dates": [D1, D2], "validation_dates": [D3]})
    assert cfg.train_dates == [D1, D2]
    for name in specs.NAMES:
        assert default_config(name).follows_data


@pytest.mark.parametrize(
    "grid, where",
    [
        ({"num_leaves": [], "min_child_samples": [50]}, "grid.num_leaves"),  # had failed with 'max() arg is empty'
        ({"num_leaves": [1], "min_child_samples": [50]}, "grid.num_leaves.0"),  # had been a LightGBM traceback
        ({"num_leaves": [15], "min_child_samples": [0]}, "grid.min_child_samples.0"),
    ],
)
def test_a_grid_lightgbm_cannot_fit_is_refused_before_any_work(grid: dict, where: str) -> None:
    """The tuning grid's values are copied into `BoostingParams` unchecked, after the features are built: an
    empty or impossible grid is refused when the configuration is read, naming the key."""
    from phm.core.config import explain

    with pytest.raises(ValidationError) as caught:
        TrainConfig.model_validate({"model_name": "emergency_admission", "grid": grid})
    assert explain(caught.value, TrainConfig).startswith(where + ":")


@pytest.mark.parametrize("rows", [0, -5])
def test_max_train_rows_is_a_positive_count(rows: int) -> None:
    with pytest.raises(ValidationError, match="max_train_rows"):
        TrainConfig.model_validate({"model_name": "emergency_admission", "max_train_rows": rows})
