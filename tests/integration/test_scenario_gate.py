"""Planning scenarios score the whole population by emergency-admission risk: only with a champion whose safety case
allows it to be used. A trained but never audited candidate, or a version made `champion` directly in MLflow
(bypassing `phm models promote`), must not score them through `phm forecast fit` (they had: the champion alias
unchecked, else the candidate), and inputs kept from an earlier fit are removed rather than reused."""

from __future__ import annotations

import json

import mlflow
import pytest

from phm.cli.forecast import scenario_inputs
from phm.core.settings import Settings
from serving.users import Role, add_user
from support.cli import run as phm
from support.homes import approved_champion, trained_copy
from training import tracking
from training.scenarios import SCORES, ScenarioError

MODEL = "emergency_admission"
FIT = ("forecast", "fit", "--site", "ICS", "--metric", "emergency_admissions", "--origins", "2", "--workers", "1")


@pytest.fixture(scope="module")
def home(ics20k_loaded, tmp_path_factory) -> Settings:
    """The 20k warehouse with version 1 trained and registered as `candidate` (not audited)."""
    return trained_copy(ics20k_loaded[0], tmp_path_factory.mktemp("scenario_gate"))


def test_only_an_approved_champion_scores_scenarios(home: Settings, tmp_path) -> None:
    folder = home.home / "forecasts" / "latest"
    with pytest.raises(ScenarioError, match=f"no {MODEL} champion"):
        scenario_inputs(home, tmp_path)  # a candidate only
    assert not (tmp_path / SCORES).exists()

    tracking.configure(home)
    mlflow.MlflowClient().set_registered_model_alias(MODEL, "champion", "1")  # straight into MLflow, no sign-off
    fit = phm(*FIT, home=home.home)
    assert fit.returncode == 0, fit.stderr[-2000:]
    said = " ".join(fit.stderr.split())
    assert "Scenarios unavailable" in said and "has not been audited" in said, fit.stdout + fit.stderr
    assert "Scenario inputs" not in fit.stdout and not (folder / SCORES).exists()
    refused = phm("forecast", "scenario", "--site", "ICS", "--metric", "emergency_admissions", home=home.home)
    assert refused.returncode != 0 and "no risk scores for scenarios" in " ".join(refused.stderr.split())

    for name, role in (("Dr Ada Jones", Role.safety_officer), ("Dee Scientist", Role.data_scientist)):
        add_user(home.home, name, role, [])
    approved_champion(home)
    info = scenario_inputs(home, folder)
    assert info["version"] == "1" and info["alias"] == "champion" and (folder / SCORES).exists()
    assert json.loads((folder / "scenario_inputs.json").read_text())["version"] == "1"

    mlflow.MlflowClient().set_model_version_tag(MODEL, "1", "audit_report_sha256", "0" * 64)  # the registry edited
    fit = phm(*FIT, home=home.home)
    assert fit.returncode == 0 and "Scenarios unavailable" in fit.stderr, fit.stderr[-2000:]
    assert not (folder / SCORES).exists()  # the earlier inputs are not kept for a champion that may not score
