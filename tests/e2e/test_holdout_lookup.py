"""A person held out of the worklist for the programme's evaluation, looked up through the served API: the answer
says so plainly and withholds the score (never `routine` with a risk), the worklist and the FHIR export leave them
out, and each lookup is in the access log like any other; an unreadable listing record fails closed."""

from __future__ import annotations

import json
import shutil

from datetime import date

import httpx
import numpy as np
import pytest

from evaluation.programme import listing
from models import specs
from phm.core import ledger
from phm.core.settings import Settings
from serving.holdout_view import HELD_OUT_NOTE

MODEL = specs.worklist().name


def call(url: str, method: str, path: str, token: str, **kw) -> httpx.Response:
    return httpx.request(method, url + path, headers={"Authorization": f"Bearer {token}"}, timeout=60, **kw)


@pytest.fixture()
def held_person(served_home: Settings, served_url: str, served_tokens: dict, tmp_path):
    """A routine person of the coordinator's practice put in the listing record as held out (as the daily job
    records a person in the approved holdout); the record is restored afterwards."""
    rows = call(
        served_url, "GET", "/api/worklist", served_tokens["coord"], params={"top": 500, "min_band": "routine"}
    ).json()["rows"]
    before = listing.read(served_home, MODEL)
    known = {str(p) for p in before.person_id}
    routine = [r for r in rows if r["band"] == "routine" and r["person_id"] not in known]
    assert len(routine) >= 2, "the coordinator's practice has routine people never listed"
    person, other = routine[0], routine[1]
    path = listing.record_path(served_home, MODEL)
    saved = tmp_path / "record.parquet"
    had = path.exists()
    if had:
        shutil.copy2(path, saved)
    day = before.first_listed.min().date() if len(before) else date(2025, 1, 1)
    listing.record(served_home, MODEL, day, np.array([int(person["person_id"])]), np.array([True]), 0.1)
    try:
        yield person, other
    finally:
        if had:
            shutil.copy2(saved, path)
        else:
            path.unlink(missing_ok=True)


@pytest.mark.slow
def test_a_held_out_person_is_said_to_be_held_out_and_their_score_withheld(
    held_person, served_home: Settings, served_url: str, served_tokens: dict
) -> None:
    person, other = held_person
    token = served_tokens["coord"]
    log = served_home.home / "security" / "access_log.jsonl"
    before = len(ledger.read(log))
    r = call(served_url, "POST", "/api/score", token, json={"person_ids": [person["person_id"], other["person_id"]]})
    assert r.status_code == 200, r.text
    held, shown = r.json()["results"]
    assert held["person_id"] == person["person_id"] and held["held_out"] is True
    assert (
        held["note"] == HELD_OUT_NOTE
        and "held out of the worklist for the programme's evaluation" in held["note"].lower()
    )
    assert (held["risk"], held["band"], held["rank"], held["reasons"]) == (None, None, None, [])
    assert shown["held_out"] is False and shown["band"] == "routine" and shown["risk"] == other["risk"]
    entry = ledger.read(log)[before]  # logged as any person-level read is
    assert entry["route"] == "/api/score" and entry["people"] == [person["person_id"], other["person_id"]]
    # nor is the person on the worklist at any band, or in the FHIR export written to care records
    rows = call(served_url, "GET", "/api/worklist", token, params={"top": 10_000, "min_band": "routine"}).json()["rows"]
    ids = {x["person_id"] for x in rows}
    assert person["person_id"] not in ids and other["person_id"] in ids
    search = call(served_url, "GET", "/api/fhir/RiskAssessment", token, params={"patient": person["person_id"]})
    bundle = search.json()
    assert bundle["total"] == 0 and bundle["entry"][0]["resource"]["resourceType"] == "OperationOutcome"
    assert bundle["entry"][0]["resource"]["issue"][0]["diagnostics"] == HELD_OUT_NOTE
    export = call(served_url, "GET", "/api/fhir/RiskAssessment/$export", token).text
    subjects = {json.loads(line)["subject"]["identifier"]["value"] for line in export.splitlines()}
    assert person["person_id"] not in subjects and other["person_id"] in subjects


@pytest.mark.slow
def test_an_unreadable_listing_record_refuses_lookups(
    held_person, served_home: Settings, served_url: str, served_tokens: dict
) -> None:
    person, _ = held_person
    listing.record_path(served_home, MODEL).write_bytes(b"not parquet")
    r = call(served_url, "POST", "/api/score", served_tokens["coord"], json={"person_ids": [person["person_id"]]})
    assert r.status_code == 503 and "listing record cannot be read" in r.json()["detail"]
    assert "risk" not in r.text
