"""The MLflow model registry: the versions of every specified model (`models.specs`) and their aliases.

Every training run registers a version with alias `candidate`. Promotion to `champion` is a
separate, gated step (the fairness audit and clinical safety sign-off).
"""

from __future__ import annotations

from dataclasses import dataclass

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from models import specs

MODEL_NAMES = specs.NAMES
HEADLINE = (
    "val_auroc",
    "val_auprc",
    "val_brier",
    "val_calibration_slope",
    "model_oracle_ratio",
    "baseline_auroc",
    "rule_auroc",
)


@dataclass
class VersionInfo:
    name: str
    version: int
    aliases: list[str]
    run_id: str
    created: int
    status: str
    metrics: dict[str, float]
    tags: dict[str, str]


def set_alias(name: str, version: int | str, alias: str) -> None:
    MlflowClient().set_registered_model_alias(name, alias, str(version))


def versions(names: tuple[str, ...] = MODEL_NAMES) -> list[VersionInfo]:
    client = MlflowClient()
    out: list[VersionInfo] = []
    for name in names:
        try:
            found = client.search_model_versions(f"name = '{name}'")
        except MlflowException:
            continue
        for found_mv in sorted(found, key=lambda v: int(v.version)):
            mv = client.get_model_version(name, found_mv.version)  # search results omit aliases
            metrics = client.get_run(mv.run_id).data.metrics if mv.run_id else {}
            out.append(
                VersionInfo(
                    name=name,
                    version=int(mv.version),
                    aliases=sorted(mv.aliases or []),
                    run_id=mv.run_id,
                    created=int(mv.creation_timestamp or 0),
                    status=(mv.tags or {}).get("audit_status", "not audited"),
                    metrics={k: metrics[k] for k in HEADLINE if k in metrics},
                    tags=dict(mv.tags or {}),
                )
            )
    return out


def load(name: str, alias: str = "candidate"):
    """The pyfunc model registered under `name@alias` (predict -> DataFrame with `risk`)."""
    return mlflow.pyfunc.load_model(f"models:/{name}@{alias}")


@dataclass
class Champion:
    """The version deployed under alias `champion`: the fitted model, its pyfunc wrapper and its feature hash."""

    name: str
    version: str
    model: object  # GradientBoostedRisk
    pyfunc: object
    feature_hash: str | None


def load_champion(name: str) -> Champion | None:
    """The `champion` of `name`, or None when no version holds the alias."""
    try:
        mv = MlflowClient().get_model_version_by_alias(name, "champion")
    except MlflowException:
        return None
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    return Champion(
        name, str(mv.version), pyfunc.unwrap_python_model().model, pyfunc, (mv.tags or {}).get("feature_hash")
    )
