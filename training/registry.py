"""The MLflow model registry: the versions of every specified model (`models.specs`) and their aliases.

Every training run registers a version with alias `candidate`. Promotion to `champion` is a
separate, gated step (the fairness audit and clinical safety sign-off).
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from models import specs
from phm.core import redact

MODEL_NAMES = specs.NAMES
NOT_FOUND = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"})


class RegistryUnavailable(RuntimeError):
    """The tracking store could not be used (unreachable, refused, broken): never taken for "no such model"."""


def missing_or_raise(exc: MlflowException) -> None:
    """Return when MLflow said what was asked for does not exist; otherwise the store failed, and that is raised
    (its message with any password in the store's address hidden)."""
    if exc.error_code not in NOT_FOUND:
        raise RegistryUnavailable(f"the model registry could not be used: {redact.message(str(exc))[:600]}") from exc


def alias_version(name: str, alias: str) -> int | None:
    """The version of `name` holding `alias`, or None when none does (a failing store raises)."""
    try:
        return int(MlflowClient().get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        missing_or_raise(exc)
        return None


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
        except MlflowException as exc:
            missing_or_raise(exc)
            continue
        for found_mv in sorted(found, key=lambda v: int(v.version)):
            mv = client.get_model_version(name, found_mv.version)  # search results omit aliases
            try:
                metrics = client.get_run(mv.run_id).data.metrics if mv.run_id else None
            except MlflowException as exc:  # deleted for good, or never a run: listed, and said
                missing_or_raise(exc)
                metrics = None
            status = (mv.tags or {}).get("audit_status", "not audited")
            out.append(
                VersionInfo(
                    name=name,
                    version=int(mv.version),
                    aliases=sorted(mv.aliases or []),
                    run_id=mv.run_id,
                    created=int(mv.creation_timestamp or 0),
                    status=status if metrics is not None else f"{status}; training run missing",
                    metrics={k: metrics[k] for k in HEADLINE if k in (metrics or {})},
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
    except MlflowException as exc:
        missing_or_raise(exc)
        return None
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    return Champion(
        name, str(mv.version), pyfunc.unwrap_python_model().model, pyfunc, (mv.tags or {}).get("feature_hash")
    )


def _written_on_load(relative: Path) -> bool:
    """Files MLflow or Python write beside a local model when it is loaded (the registered name and version;
    bytecode caches): not part of what was audited."""
    return relative.name == "registered_model_meta" or "__pycache__" in relative.parts


def files_sha256(name: str, version: int | str) -> str:
    """SHA-256 over a registered version's model files (each file's path and content): what its audit, and so its
    approval, are bound to. A local store's files are read in place; others are downloaded first."""
    uri = MlflowClient().get_model_version_download_uri(name, str(version))
    with tempfile.TemporaryDirectory() as tmp:
        parsed = urlparse(uri)
        if parsed.scheme == "file":
            root = Path(url2pathname(parsed.path))
        else:
            root = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: the model files of {name} version {version} are missing")
        digest = hashlib.sha256()
        for path in sorted(p for p in root.rglob("*") if p.is_file() and not _written_on_load(p.relative_to(root))):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        return digest.hexdigest()


RUN_FILES_TAG = "phm.model_files_sha256"  # on a training run: the digest of the model files it logged and validated


def record_run_files(name: str, version: int | str, run_id: str) -> str:
    """Tag the training run with the digest of the version's model files it registered (`files_sha256`): what its
    validation scores describe."""
    digest = files_sha256(name, version)
    MlflowClient().set_tag(run_id, RUN_FILES_TAG, digest)
    return digest


def run_files_problem(name: str, version: int | str) -> str | None:
    """Why the version's validation scores (its run's) do not describe its model files, or None when they do: the
    files must be those its run logged. A version registered with another run's id, or from other files, is not."""
    client = MlflowClient()
    mv = client.get_model_version(name, str(version))
    try:
        logged = client.get_run(mv.run_id).data.tags.get(RUN_FILES_TAG) if mv.run_id else None
    except MlflowException:
        return f"its training run ({mv.run_id}) is missing from the tracking store"
    if logged is None:
        return (
            f"its training run ({mv.run_id or 'none'}) records no model files (registered from outside a training "
            "run, or trained before runs recorded them)"
        )
    if logged != files_sha256(name, version):
        return f"its model files are not the ones its training run ({mv.run_id}) logged and validated"
    return None
