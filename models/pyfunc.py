"""The MLflow pyfunc form of a risk model: returns calibrated probabilities, not class labels.

Logged with `code_paths=["models"]` so a registered version loads with this code alone.
"""

from __future__ import annotations

import pickle

import mlflow.pyfunc
import numpy as np
import pandas as pd


class RiskPyfunc(mlflow.pyfunc.PythonModel):
    """`predict(DataFrame of predictors) -> DataFrame(risk)` for a pickled `GradientBoostedRisk`."""

    def load_context(self, context) -> None:
        with open(context.artifacts["model"], "rb") as fh:
            self.model = pickle.load(fh)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        risk = self.model.predict_proba(frame)[:, 1]
        return pd.DataFrame({"risk": np.asarray(risk, dtype=float)}, index=frame.index)
