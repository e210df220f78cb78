"""A signed-off model whose files change in the registry afterwards is not promoted, scored or served: on a real
MLflow store, a quickly trained, audited, approved and promoted version of the worklist model, then

* its pickled model replaced in place (same version, same run, same tags: only the bytes differ);
* the registered model deleted and version 1 registered again from other files, with the approved version's
  tags copied onto it (the sign-off replayed onto another artifact).

Both leave the hazard log untouched (no ledger key needed), so only a digest of the model's files, recorded in the
signed audit entry, can tell. A new audit of the changed files reopens the decision for a safety officer."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
from mlflow import MlflowClient

from phm.core.settings import Settings
from serving.governance.signoff import gate
from serving.users import Role, add_user
from support.cli import run as phm
from support.homes import approved_champion, registry_copy, trained_copy
from training import tracking

MODEL = "emergency_admission"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(ics20k_loaded, tmp_path_factory) -> Settings:
    return trained_copy(ics20k_loaded[0], tmp_path_factory.mktemp("tamper_trained"))


def approved_home(trained: Settings, root: Path) -> tuple[Settings, Path]:
    """A home whose version 1 is audited, approved and champion, reading its own copy of the model's files."""
    home = registry_copy(trained, root)
    tracking.configure(home)
    client = MlflowClient()
    original = Path(client.get_model_version_download_uri(MODEL, "1").removeprefix("file://"))
    files = root / "model_files"
    shutil.copytree(original, files)
    mv = client.get_model_version(MODEL, "1")
    client.delete_registered_model(MODEL)
    client.create_registered_model(MODEL)
    client.create_model_version(MODEL, files.as_uri(), mv.run_id, tags=mv.tags)
    client.set_registered_model_alias(MODEL, "candidate", "1")
    add_user(home.home, "Dr Ada Jones", Role.safety_officer, [])
    add_user(home.home, "Dee Scientist", Role.data_scientist, [])
    approved_champion(home)
    return home, files


def swap_weights(pickled: Path) -> None:
    """The model re-pickled with one parameter changed: the files are no longer those that were audited."""
    model = pickle.loads(pickled.read_bytes())
    model.booster_.set_params(learning_rate=model.booster_.learning_rate * 2)
    pickled.write_bytes(pickle.dumps(model))


def test_model_files_replaced_after_sign_off_are_refused_everywhere(trained, tmp_path) -> None:
    home, files = approved_home(trained, tmp_path / "home")
    assert phm("score", "daily", home=home.home).returncode == 0
    assert gate(home, MODEL, 1).allowed  # loading the model (as the daily job did) changes none of its files
    swap_weights(files / "artifacts" / "model.pkl")
    check = gate(home, MODEL, 1)
    assert not check.allowed and "model files" in check.reason and "audit" in check.reason
    promoted = phm("models", "promote", "--model", MODEL, "--version", "1", "--by", "Dee Scientist", home=home.home)
    assert promoted.returncode == 2 and "model files" in promoted.stderr
    scored = phm("score", "daily", home=home.home)
    assert scored.returncode == 2 and "model files" in scored.stderr and "Traceback" not in scored.stderr
    approve = phm(
        "audit",
        "approve",
        "--model",
        MODEL,
        "--version",
        "1",
        "--by",
        "Dr Ada Jones",
        "--reason",
        "x",
        "--accept-flags",
        home=home.home,
    )
    assert approve.returncode == 2 and "model files" in approve.stderr
    # nor audited again: the audit reads the scores of the run's own files, which these are not
    reaudit = phm("audit", "run", "--model", MODEL, "--version", "1", home=home.home)
    assert reaudit.returncode == 2 and "not the ones its training run" in " ".join(reaudit.stderr.split())
    assert not gate(home, MODEL, 1).allowed


def test_a_sign_off_replayed_onto_other_files_is_refused(trained, tmp_path) -> None:
    home, files = approved_home(trained, tmp_path / "home")
    client = MlflowClient()
    mv = client.get_model_version(MODEL, "1")
    other = tmp_path / "other_files"
    shutil.copytree(files, other)
    swap_weights(other / "artifacts" / "model.pkl")
    client.delete_registered_model(MODEL)  # version numbers restart: the new version is 1 again
    client.create_registered_model(MODEL)
    client.create_model_version(MODEL, other.as_uri(), mv.run_id, tags=mv.tags)
    client.set_registered_model_alias(MODEL, "champion", "1")
    check = gate(home, MODEL, 1)
    assert not check.allowed and "model files" in check.reason
    scored = phm("score", "daily", home=home.home)
    assert scored.returncode == 2 and "model files" in scored.stderr
