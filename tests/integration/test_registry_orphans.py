"""A registry version whose training run is gone (deleted for good with `mlflow gc`, or a version registered with
a run id that never existed) on a real MLflow store through the real `phm`: `phm models list` lists it and says
so (it had died with a traceback, and with it the Models page and /api/models), and its audit is refused naming
the missing run rather than crashing."""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient

from phm.core.settings import Settings
from support.cli import run as phm
from training import registry, tracking

MODEL = "emergency_admission"
GONE = "f" * 32


def test_a_version_without_its_run_is_listed_and_not_audited(tmp_path: Path) -> None:
    home = Settings(home=tmp_path / "home")
    files = tmp_path / "model_files"
    files.mkdir()
    (files / "MLmodel").write_text("flavors: {}\n")
    tracking.configure(home)
    client = MlflowClient()
    client.create_registered_model(MODEL)
    client.create_model_version(MODEL, files.as_uri(), GONE)
    assert [(v.version, v.status, v.metrics) for v in registry.versions()] == [
        (1, "not audited; training run missing", {})
    ]
    listed = phm("models", "list", home=home.home)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr[-2000:]
    assert "training run missing" in " ".join(listed.stdout.split())
    audit = phm("audit", "run", "--model", "emergency-admission", "--version", "1", home=home.home)
    said = " ".join(audit.stderr.split())
    assert audit.returncode == 2 and f"its training run ({GONE}) is missing" in said, audit.stderr[-2000:]
