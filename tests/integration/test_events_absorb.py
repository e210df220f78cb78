"""`phm events absorb`'s work on a 20,000-person home: the stored events laid into the warehouse (replaced in one
rename), the absorbed warehouse scored at the events' index date and published, the absorbed events pruned (those
of encounters still open or touched on the snapshot's last day kept), their ids remembered as duplicates, and the
kept events laid over the new snapshot."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import duckdb
import pandas as pd
import pytest
from support.homes import registry_copy

from features.events.emit import hl7_adt
from features.events.store import EventStore, events_root, ingest
from features.sources.pseudonymise import Pseudonymiser
from phm.core.settings import DEMO_PSEUDONYM_KEY
from serving.batch.absorb import absorb_events
from serving.batch.common import default_date
from serving.batch.daily import score_daily
from serving.batch.store import current
from training import tracking


@pytest.fixture(scope="module")
def absorbed(served_home, ics20k, tmp_path_factory):
    home = registry_copy(served_home, tmp_path_factory.mktemp("absorb_home"))
    tracking.configure(home)
    day = default_date(home.warehouse_path)
    score_daily(home, day)
    con = duckdb.connect(str(home.warehouse_path), read_only=True)
    known = (
        con.execute(
            "SELECT * FROM apc_spells WHERE discharge_method IS NOT NULL AND admission_method = '21' "
            "ORDER BY spell_id LIMIT 1"
        )
        .fetchdf()
        .iloc[0]
    )
    people = con.execute("SELECT person_id FROM patients ORDER BY person_id LIMIT 3").fetchnumpy()["person_id"]
    spells_before = con.execute("SELECT count(*) FROM apc_spells").fetchone()[0]
    con.close()
    patients = pd.read_parquet(ics20k.out_dir / "patients.parquet", columns=["nhs_number"])
    pseudo = Pseudonymiser(DEMO_PSEUDONYM_KEY.encode())
    numbers = {pseudo.person_id(n): n for n in patients.nhs_number}
    a, b, c = (numbers[int(p)] for p in people)
    old, today = datetime.combine(day - timedelta(days=4), time(9)), datetime.combine(day, time(9))
    fields = dict(admission_method="21", site_code=known.site_code, diagnosis=known.primary_diagnosis)
    messages = {
        "open": [hl7_adt("OPEN1", "admit", a, "ABS_OPEN", today, start=today, **fields)],
        "closed": [
            hl7_adt("CLOSED1", "admit", b, "ABS_CLOSED", old, start=old, **fields),
            hl7_adt(
                "CLOSED2",
                "discharge",
                b,
                "ABS_CLOSED",
                old + timedelta(hours=6),
                start=old,
                end=old,
                discharge_method=known.discharge_method,
                **fields,
            ),
        ],
        "cancelled": [
            hl7_adt("GONE1", "admit", c, "ABS_GONE", old, start=old, **fields),
            hl7_adt("GONE2", "cancel_admit", c, "ABS_GONE", old + timedelta(hours=1)),
        ],
    }
    now = datetime.combine(day, time(12))
    ingest(home, [("test", m) for m in messages["open"] + messages["closed"]], now=now)
    ingest(home, [("test", m) for m in messages["cancelled"]], now=now)
    out = absorb_events(home)
    return {
        "home": home,
        "day": day,
        "out": out,
        "messages": messages,
        "now": now,
        "spells_before": spells_before,
        "people": [int(p) for p in people],
    }


def test_the_warehouse_holds_the_events_rows(absorbed) -> None:
    con = duckdb.connect(str(absorbed["home"].warehouse_path), read_only=True)
    spells = con.execute(
        "SELECT spell_id, discharge_date FROM apc_spells WHERE spell_id LIKE 'ABS_%' ORDER BY spell_id"
    ).fetchall()
    total = con.execute("SELECT count(*) FROM apc_spells").fetchone()[0]
    con.close()
    old = absorbed["day"] - timedelta(days=4)
    assert spells == [("ABS_CLOSED", old), ("ABS_OPEN", None)]
    assert total == absorbed["spells_before"] + 2
    assert not absorbed["home"].warehouse_path.with_name("phm.duckdb.tmp").exists()


def test_a_snapshot_of_the_absorbed_warehouse_is_published_at_the_events_index_date(absorbed) -> None:
    out = absorbed["out"]
    assert out["events"] == 5 and out["snapshot"] == str(absorbed["day"] + timedelta(days=1)) and out["published"]
    meta, live = current(absorbed["home"])
    assert meta["date"] == out["snapshot"] and meta["delta"]["events"] == 1  # the kept (open) admission
    assert meta["index_date"] == out["snapshot"] and meta["delta"]["base"] is None


def test_only_events_still_needed_are_kept_and_absorbed_ones_stay_duplicates(absorbed) -> None:
    store = EventStore(events_root(absorbed["home"]))
    assert (absorbed["out"]["pruned"], absorbed["out"]["kept"]) == (4, 1)
    assert store.events().message_id.tolist() == ["OPEN1"] and len(store.batches()) == 1
    again = ingest(
        absorbed["home"], [("test", m) for ms in absorbed["messages"].values() for m in ms], now=absorbed["now"]
    )
    assert (again.accepted, again.duplicates) == (0, 5)
