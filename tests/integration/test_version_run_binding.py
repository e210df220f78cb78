"""A registry version is audited on the validation scores its training run logged: only when its model files are
the ones that run logged. A version registered with a run's id but other files (another fit, other weights) had
been audited, approved and promoted on the scores of a model it is not; now its audit is refused, naming why, and
nothing reaches the hazard log, so it cannot be approved. The same files registered again still audit."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
from mlflow import MlflowClient

from evaluation.fairness.config import AuditConfig
from phm.core import ledger_file
from phm.core.settings import Settings
from serving.governance.model_audit import audit_model
from support.cli import run as phm
from support.homes import trained_copy
from training import registry, tracking

MODEL = "emergency_admission"


@pytest.fixture(scope="module")
def home(ics20k_loaded, tmp_path_factory) -> Settings:
    return trained_copy(ics20k_loaded[0], tmp_path_factory.mktemp("run_binding"))


def test_a_version_with_another_models_files_is_not_audited(home: Settings, tmp_path: Path) -> None:
    tracking.configure(home)
    client = MlflowClient()
    v1 = client.get_model_version(MODEL, "1")
    assert client.get_run(v1.run_id).data.tags[registry.RUN_FILES_TAG] == registry.files_sha256(MODEL, 1)
    files = Path(client.get_model_version_download_uri(MODEL, "1").removeprefix("file://"))
    other = tmp_path / "other_fit"
    shutil.copytree(files, other)
    model = pickle.loads((other / "artifacts" / "model.pkl").read_bytes())
    model.booster_.set_params(learning_rate=model.booster_.learning_rate * 2)  # a model the run never validated
    (other / "artifacts" / "model.pkl").write_bytes(pickle.dumps(model))
    client.create_model_version(MODEL, other.as_uri(), v1.run_id, tags=v1.tags)  # version 2, the run's id

    out = phm("audit", "run", "--model", "emergency-admission", "--version", "2", "--draws", "50", home=home.home)
    said = " ".join(out.stderr.split())
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert f"its model files are not the ones its training run ({v1.run_id}) logged and validated" in said
    assert "Traceback" not in out.stderr
    log = ledger_file.read(home.home / "safety" / "hazard_log.jsonl") if (home.home / "safety").exists() else []
    assert not [e for e in log if e.get("kind") == "audit" and e.get("version") == 2]
    assert "audit_report_sha256" not in client.get_model_version(MODEL, "2").tags

    client.create_model_version(MODEL, files.as_uri(), v1.run_id, tags=v1.tags)  # version 3: the run's own files
    assert audit_model(home, MODEL, 3, AuditConfig(bootstrap_draws=20)).result.subject["version"] == 3
