"""MLflow "models from code" entry point: the pyfunc logged for every risk model version."""

import mlflow.models

from models.pyfunc import RiskPyfunc

mlflow.models.set_model(RiskPyfunc())
