"""MLflow set-up: a local SQLite store under PHM_HOME by default, artifacts beside it, no network."""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow

from phm.core.settings import Settings

if TYPE_CHECKING:  # the model's libraries load only where a model is logged (not for every registry lookup)
    import pandas as pd
    from mlflow.models.model import ModelInfo

    from models.risk import GradientBoostedRisk

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"


def configure(settings: Settings) -> str:
    """Point MLflow at the configured tracking store; returns the URI."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = settings.mlflow_tracking_uri
    if uri.startswith(("http://", "https://")):  # an unreachable server fails in seconds, not after two minutes
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def experiment_id(settings: Settings, name: str) -> str:
    """The experiment's id, creating it with artifacts under PHM_HOME (not ./mlruns)."""
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = (settings.mlflow_artifacts_dir / name).as_uri()
    return mlflow.create_experiment(name, artifact_location=location)


def pip_requirements() -> list[str]:
    """Explicit requirements (inferring them costs seconds and may reach for the network)."""
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("mlflow", "lightgbm", "scikit-learn", "pandas", "numpy")]


def log_risk_model(model: GradientBoostedRisk, example: pd.DataFrame, registered_name: str | None) -> ModelInfo:
    """Log the calibrated model as a pyfunc returning probabilities, with signature and input example."""
    import pandas as pd
    from mlflow.models import infer_signature

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.pkl"
        path.write_bytes(pickle.dumps(model))
        code = _owner_only_copy(MODELS_DIR, Path(tmp) / MODELS_DIR.name)  # MLflow copies files with their modes
        signature = infer_signature(example, pd.DataFrame({"risk": model.predict_proba(example)[:, 1]}))
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(code / "pyfunc_entry.py"),
            artifacts={"model": str(path)},
            signature=signature,
            input_example=example,
            pip_requirements=pip_requirements(),
            code_paths=[str(code)],
            registered_model_name=registered_name,
        )


def _owner_only_copy(src: Path, dst: Path) -> Path:
    """A copy of the model code whose files are 0600 (MLflow keeps source files' modes in PHM_HOME)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for path in [dst, *dst.rglob("*")]:
        path.chmod(0o700 if path.is_dir() else 0o600)
    return dst
