"""The event store under a full disk: a batch that cannot be written fails with a clear error naming the store,
leaves no part-file, changes nothing stored before (every earlier event still reads back), and once space is
freed the same messages are stored as if nothing had happened (not duplicates: nothing of them was kept).

The full disk is a small tmpfs mounted over the store (as root, as CI runs), else a file-size limit (RLIMIT_FSIZE)
on this process while the batch is written."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

import pytest

from features.events.checks import Known
from features.events.emit import hl7_adt
from features.events.store import EventStore, StoreFullError, events_root, ingest
from features.sources.pseudonymise import Pseudonymiser
from phm.core.settings import Settings
from support.disk_full import filling_disk

NHS = "9434765919"
T0 = datetime(2026, 12, 1, 8)


def _messages(prefix: str, n: int) -> list[tuple[str, str]]:
    return [
        (
            "test",
            hl7_adt(
                f"{prefix}{i}",
                "admit",
                NHS,
                f"{prefix}V{i}",
                T0,
                start=T0,
                admission_method="21",
                site_code="RXX01",
                diagnosis="S72.0",
            ),
        )
        for i in range(n)
    ]


@pytest.fixture()
def store_home(tmp_path):
    home = Settings(home=tmp_path, pseudonym_key="s" * 32)
    with filling_disk(events_root(home), "2m", 256) as disk:
        yield home, disk


def test_a_batch_that_cannot_be_written_loses_nothing_and_says_so(store_home) -> None:
    home, disk = store_home
    store = EventStore(events_root(home))
    pseudo = Pseudonymiser(b"k" * 32)
    first = ingest(home, _messages("A", 20), known=Known(), pseudonymiser=pseudo, now=T0 + timedelta(hours=1))
    assert first.accepted == 20
    before = store.events()
    with disk.full():
        with pytest.raises(StoreFullError) as failed:
            ingest(home, _messages("B", 200), known=Known(), pseudonymiser=pseudo, now=T0 + timedelta(hours=2))
    assert str(store.accepted) in str(failed.value) and "nothing of this batch was stored" in str(failed.value)
    assert not [p for p in store.root.rglob("*") if p.name.endswith(".tmp")]
    after = store.events()
    assert after.equals(before) and len(after) == 20
    again = ingest(home, _messages("B", 200), known=Known(), pseudonymiser=pseudo, now=T0 + timedelta(hours=3))
    assert (again.accepted, again.duplicates) == (200, 0) and len(store.events()) == 220


def test_the_feed_endpoint_fails_closed_with_a_503_and_stores_the_post_once_space_is_freed(store_home) -> None:
    from fastapi.testclient import TestClient

    from serving.api import create_app
    from serving.state import ServiceState
    from serving.users import Role, add_user

    home, disk = store_home
    if not disk.tmpfs:
        pytest.skip("needs the tmpfs (root): a file-size limit would also stop the access log")
    _user, token = add_user(home.home, "feed", Role.data_feed, [])
    app = create_app()
    app.state.phm = ServiceState(home)
    store = EventStore(events_root(home))
    body = "\r\n".join(m for _o, m in _messages("C", 30))
    with TestClient(app) as c:
        ok = c.post(
            "/events",
            content=hl7_adt("D0", "admit", NHS, "DV0", T0, start=T0, admission_method="21", site_code="RXX01"),
            headers={"Authorization": f"Bearer {token}"},
        )
        assert ok.status_code == 200 and ok.json()["accepted"] == 1
        with disk.full():
            r = c.post("/events", content=body, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 503 and "nothing in this post was stored" in r.json()["detail"]
        assert r.headers["retry-after"] == "60" and NHS not in r.text
        assert store.events().message_id.tolist() == ["D0"]
        again = c.post("/events", content=body, headers={"Authorization": f"Bearer {token}"})
        assert again.status_code == 200 and again.json()["accepted"] == 30


def test_a_quarantine_that_cannot_be_written_after_the_accepted_events_says_what_was_stored(tmp_path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs a tmpfs over the quarantine alone (root): a file-size limit would stop both writes")
    home = Settings(home=tmp_path, pseudonym_key="s" * 32)
    store = EventStore(events_root(home))
    batch = _messages("G", 5) + [("test", "not a message")] * 3
    with filling_disk(store.quarantine, "1m", 256) as disk, disk.full():
        if not disk.tmpfs:
            pytest.skip("cannot mount a tmpfs here")
        with pytest.raises(StoreFullError) as failed:
            ingest(home, batch, known=Known(), pseudonymiser=Pseudonymiser(b"k" * 32), now=T0 + timedelta(hours=1))
    said = str(failed.value)
    assert failed.value.stored == 5 and "the 5 accepted events of this batch were stored" in said
    assert "its 3 quarantined messages were not" in said and "nothing of this batch was stored" not in said
    again = ingest(home, batch, known=Known(), pseudonymiser=Pseudonymiser(b"k" * 32), now=T0 + timedelta(hours=2))
    assert (again.accepted, again.duplicates, sum(again.quarantined.values())) == (0, 5, 3)
    assert len(store.events()) == 5 and len(store.quarantined()) == 3
