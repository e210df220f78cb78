"""`POST /api/events` on the real API app and service state (in process): the data_feed role posts events and
is refused everything else; other roles cannot post; the access log records each request."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from support.hostile_events import nested_encounter_json

from features.events.emit import fhir_bundle, fhir_encounter, hl7_adt
from features.events.store import EventStore, events_root
from phm.core.settings import Settings
from serving.users import Role, add_user

NHS = "9434765919"


@pytest.fixture()
def client(tmp_path):
    from serving.api import create_app
    from serving.state import ServiceState

    home = Settings(home=tmp_path / "home", pseudonym_key="s" * 32)
    home.home.mkdir(parents=True)
    tokens = {
        role: add_user(home.home, role.value, role, ["A81001"] if role == Role.coordinator else [])[1]
        for role in (Role.data_feed, Role.coordinator, Role.data_scientist)
    }
    app = create_app()
    app.state.phm = ServiceState(home)
    with TestClient(app) as c:
        yield c, home, tokens


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_a_feed_posts_hl7_and_fhir_events_idempotently(client) -> None:
    c, home, tokens = client
    now = datetime.utcnow().replace(microsecond=0) - timedelta(hours=2)
    body = "\r\n".join(
        [
            hl7_adt("H1", "admit", NHS, "V1", now, start=now, admission_method="21", site_code="RXX01"),
            hl7_adt("H2", "discharge", NHS, "V1", now + timedelta(hours=1), end=now + timedelta(hours=1)),
        ]
    )
    r = c.post(
        "/events", content=body, headers={**auth(tokens[Role.data_feed]), "content-type": "x-application/hl7-v2+er7"}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"received": 2, "accepted": 2, "duplicates": 0, "quarantined": {}, "people_affected": 1}
    again = c.post("/events", content=body, headers=auth(tokens[Role.data_feed]))
    assert (again.status_code, again.json()["duplicates"], again.json()["accepted"]) == (200, 2, 0)
    bundle = fhir_bundle(
        "b", [fhir_encounter("e1", 1, "arrived", NHS, "A1", now, emergency=True, start=now, site_code="RXX02")]
    )
    r = c.post(
        "/events", content=bundle, headers={**auth(tokens[Role.data_feed]), "content-type": "application/fhir+json"}
    )
    assert r.status_code == 200 and r.json()["accepted"] == 1
    rows = EventStore(events_root(home)).rows()
    assert (len(rows["apc_spells"]), len(rows["ae_attendances"])) == (1, 1)


def test_nothing_storable_is_422_with_reasons(client) -> None:
    c, _home, tokens = client
    r = c.post("/events", content="MSH|^~\\&|broken", headers=auth(tokens[Role.data_feed]))
    assert r.status_code == 422 and r.json()["accepted"] == 0 and sum(r.json()["quarantined"].values()) == 1
    assert c.post("/events", content="", headers=auth(tokens[Role.data_feed])).status_code == 422


@pytest.mark.parametrize("path", ["/me", "/worklist", "/cohort/summary", "/models"])
def test_the_feed_token_reads_nothing(client, path) -> None:
    c, _home, tokens = client
    assert c.get(path, headers=auth(tokens[Role.data_feed])).status_code == 403


def test_the_feed_token_gets_no_more_of_the_health_check_than_a_stranger(client) -> None:
    c, _home, tokens = client
    assert c.get("/health", headers=auth(tokens[Role.data_feed])).json() == c.get("/health").json() == {"status": "ok"}
    assert "models" in c.get("/health", headers=auth(tokens[Role.data_scientist])).json()


def test_other_roles_and_no_token_cannot_post(client) -> None:
    c, _home, tokens = client
    body = hl7_adt(
        "H9",
        "admit",
        NHS,
        "V9",
        datetime(2026, 1, 1),
        start=datetime(2026, 1, 1),
        admission_method="21",
        site_code="RXX01",
    )
    assert c.post("/events", content=body).status_code == 401
    for role in (Role.coordinator, Role.data_scientist):
        assert c.post("/events", content=body, headers=auth(tokens[role])).status_code == 403


def test_a_deeply_nested_body_is_quarantined_not_a_server_error(client) -> None:
    c, home, tokens = client
    r = c.post(
        "/events",
        content=nested_encounter_json(NHS),
        headers={**auth(tokens[Role.data_feed]), "content-type": "application/fhir+json"},
    )
    assert r.status_code == 422 and r.json()["quarantined"] == {"unparseable": 1}, r.text
    assert NHS not in r.text and EventStore(events_root(home)).quarantined().reason.tolist() == ["unparseable"]


def test_hl7_times_with_an_offset_are_stored_in_utc_as_fhir_times_are(client) -> None:
    c, home, tokens = client
    local = datetime.utcnow().replace(microsecond=0) - timedelta(hours=3)
    body = hl7_adt("TZ1", "admit", NHS, "TZV1", local, start=local, admission_method="21", site_code="RXX01")
    stamp = f"{local:%Y%m%d%H%M%S}"
    body = body.replace(stamp, stamp + "+0100")  # British Summer Time: one hour ahead of UTC
    assert c.post("/events", content=body, headers=auth(tokens[Role.data_feed])).json()["accepted"] == 1
    event = EventStore(events_root(home)).events().iloc[0]
    assert event.occurred == event.start == local - timedelta(hours=1)
    edge = body.replace("TZ1", "TZ2").replace(f"{stamp}+0100", "00010101000000+0100")  # before the calendar in UTC
    r = c.post("/events", content=edge, headers=auth(tokens[Role.data_feed]))
    assert r.status_code == 422 and r.json()["quarantined"] == {"date_out_of_range": 1}, r.text
