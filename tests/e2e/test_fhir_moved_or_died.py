"""FHIR RiskAssessments go only to the practice of people still its patients: a person a coordinator recorded as
moved away or died is in neither the search nor the bulk export (they had been sent on, every day, to the care
records of a practice they had left), on a real `bentoml serve` of a copy of the served home."""

from __future__ import annotations

import json

import httpx
import pandas as pd
import pytest

from phm.core.settings import Settings
from serving.batch.store import current_folder
from serving.users import Role, add_user
from support.homes import registry_copy
from support.served import serve

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(served_home, tmp_path_factory) -> tuple[Settings, str]:
    found = registry_copy(served_home, tmp_path_factory.mktemp("fhir_gone"), snapshots=True)
    scores = pd.read_parquet(current_folder(found) / "scores.parquet")
    _, token = add_user(found.home, "Fi Coordinator", Role.coordinator, [scores.practice_code.value_counts().index[0]])
    return found, token


@pytest.fixture(scope="module")
def url(home, tmp_path_factory):
    yield from serve(home[0], tmp_path_factory)


def _exported(url: str, auth: dict) -> set[str]:
    out = httpx.get(url + "/api/fhir/RiskAssessment/$export", headers=auth, timeout=60)
    assert out.status_code == 200, out.text
    return {json.loads(line)["subject"]["identifier"]["value"] for line in out.text.splitlines()}


def test_a_person_recorded_as_moved_away_or_died_gets_no_risk_assessment(home, url) -> None:
    _, token = home
    auth = {"Authorization": f"Bearer {token}"}
    person = httpx.get(url + "/api/worklist?top=1", headers=auth, timeout=60).json()["rows"][0]["person_id"]
    search = url + f"/api/fhir/RiskAssessment?patient={person}"
    assert httpx.get(search, headers=auth, timeout=60).json()["total"] == 1 and person in _exported(url, auth)
    recorded = httpx.post(
        url + "/api/worklist/outcomes", headers=auth, json={"person_id": person, "outcome": "moved_or_died"}, timeout=60
    )
    assert recorded.status_code == 201, recorded.text
    assert httpx.get(search, headers=auth, timeout=60).json()["total"] == 0
    assert person not in _exported(url, auth)
