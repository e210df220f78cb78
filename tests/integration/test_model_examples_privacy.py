"""The examples a training run logs with the model (MLflow's input example and serving example, inside the model's
files; the example reasons) travel wherever the model goes. They had been the first five validation rows: five
real people's whole predictor records (age, deprivation, conditions, admissions). Now no example row is any
person's row in the training or validation tables."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from phm.core.settings import Settings
from support.homes import trained_copy
from training import tracking

MODEL = "emergency_admission"


@pytest.fixture(scope="module")
def home(ics20k_loaded, tmp_path_factory) -> Settings:
    return trained_copy(ics20k_loaded[0], tmp_path_factory.mktemp("examples_privacy"))


def test_no_logged_example_is_a_real_persons_record(home: Settings) -> None:
    tracking.configure(home)
    client = MlflowClient()
    version = client.get_model_version(MODEL, "1")
    files = Path(client.get_model_version_download_uri(MODEL, "1").removeprefix("file://"))
    logged = json.loads((files / "input_example.json").read_text())
    examples = pd.DataFrame(logged["data"], columns=logged["columns"]).astype("float64")
    assert len(examples) == 5 and (files / "serving_input_example.json").exists()
    reasons = mlflow.artifacts.load_dict(f"runs:/{version.run_id}/validation/example_reasons.json")["examples"]
    assert len(reasons) == 5
    for part in ("train", "validation"):
        people = pd.read_parquet(home.features_dir / f"{MODEL}_{part}.parquet")[list(examples.columns)]
        people = people.astype("float64").fillna(-1e300)
        found = people.merge(examples.fillna(-1e300), how="inner")
        assert found.empty, f"{len(found)} example row(s) are {part} people's records"
        for i, row in enumerate(reasons):  # each reason's value is the example's, not a person's
            assert all(examples.loc[i, r["feature"]] == pytest.approx(r["value"]) for r in row)
