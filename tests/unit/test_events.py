"""Event messages: each HL7 v2 ADT trigger and FHIR Encounter status, each kind of bad message (quarantined with
its reason, never its content), idempotency on message id, cancellations, and out-of-order delivery."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from features.events.checks import Known
from features.events.emit import fhir_bundle, fhir_encounter, hl7_adt
from features.events.store import EventStore, events_root, ingest, parse
from features.sources.pseudonymise import Pseudonymiser
from phm.core.settings import Settings

NHS, OTHER, BAD_CHECK = "9434765919", "4010232137", "9434765918"
KEY = b"k" * 32
T0 = datetime(2026, 12, 1, 8, 0)
NOW = datetime(2026, 12, 1, 18, 0)


@pytest.fixture()
def home(tmp_path) -> Settings:
    return Settings(home=tmp_path, pseudonym_key="s" * 32)


def run(home: Settings, *texts: str, known: Known | None = None, now: datetime = NOW):
    return ingest(home, [("test", t) for t in texts], known=known or Known(), pseudonymiser=Pseudonymiser(KEY), now=now)


def admit(mid="M1", enc="V1", at=T0, **kw) -> str:
    args = dict(start=at - timedelta(minutes=30), admission_method="21", site_code="RXX01", diagnosis="S72.0")
    return hl7_adt(mid, "admit", NHS, enc, at, **{**args, **kw})


def discharge(mid="M2", enc="V1", at=T0 + timedelta(hours=5), **kw) -> str:
    return hl7_adt(mid, "discharge", NHS, enc, at, end=at - timedelta(minutes=10), discharge_method="1", **kw)


def rows(home: Settings):
    return EventStore(events_root(home)).rows()


def test_a01_admission_becomes_an_open_spell_under_the_pseudonym(home) -> None:
    report = run(home, admit())
    assert (report.accepted, report.duplicates, dict(report.quarantined)) == (1, 0, {})
    apc = rows(home)["apc_spells"]
    assert len(apc) == 1
    spell = apc.iloc[0]
    assert spell.person_id == Pseudonymiser(KEY).person_id(NHS)
    assert (
        spell.spell_id,
        str(spell.admission_date),
        spell.discharge_date,
        spell.admission_method,
        spell.primary_diagnosis,
        spell.site_code,
    ) == ("V1", "2026-12-01", None, "21", "S720", "RXX01")
    stored = EventStore(events_root(home)).root
    assert NHS.encode() not in b"".join(p.read_bytes() for p in stored.rglob("*") if p.is_file())


def test_a03_discharge_closes_the_spell(home) -> None:
    run(home, admit(), discharge())
    spell = rows(home)["apc_spells"].iloc[0]
    assert (str(spell.discharge_date), spell.discharge_method) == ("2026-12-01", "1")


def test_a04_registers_an_ae_attendance_and_a03_records_its_departure(home) -> None:
    arrive = hl7_adt("E1", "attend", NHS, "AE9", T0, emergency=True, start=T0, site_code="RXX02")
    leave = hl7_adt("E2", "discharge", NHS, "AE9", T0 + timedelta(hours=3), emergency=True, end=T0 + timedelta(hours=3))
    run(home, arrive, leave)
    out = rows(home)
    assert out["apc_spells"].empty
    ae = out["ae_attendances"].iloc[0]
    assert (ae.attendance_id, ae.arrival_time, ae.departure_time, ae.site_code) == (
        "AE9",
        T0,
        T0 + timedelta(hours=3),
        "RXX02",
    )


def test_a08_update_changes_only_the_fields_it_carries(home) -> None:
    update = hl7_adt("M3", "update", NHS, "V1", T0 + timedelta(hours=1), diagnosis="J44.1")
    run(home, admit(), update)
    spell = rows(home)["apc_spells"].iloc[0]
    assert (spell.primary_diagnosis, spell.admission_method, spell.site_code) == ("J441", "21", "RXX01")


def test_a11_cancels_the_admission_and_a_later_admit_reopens_it(home) -> None:
    cancel = hl7_adt("M3", "cancel_admit", NHS, "V1", T0 + timedelta(hours=1))
    run(home, admit(), cancel)
    assert rows(home)["apc_spells"].empty
    run(home, admit(mid="M4", at=T0 + timedelta(hours=2), admission_method="22"))
    spell = rows(home)["apc_spells"].iloc[0]
    assert spell.admission_method == "22" and spell.primary_diagnosis == "S720"


def test_a13_cancels_the_discharge_only(home) -> None:
    cancel = hl7_adt("M3", "cancel_discharge", NHS, "V1", T0 + timedelta(hours=6))
    run(home, admit(), discharge(), cancel)
    spell = rows(home)["apc_spells"].iloc[0]
    assert spell.discharge_date is None and spell.discharge_method is None and spell.admission_method == "21"


def test_a_resent_message_changes_nothing(home) -> None:
    first = run(home, admit(), discharge())
    again = run(home, admit(), discharge(), admit())
    assert (first.accepted, again.accepted, again.duplicates) == (2, 0, 3)
    assert len(EventStore(events_root(home)).events()) == 2


def test_the_rows_do_not_depend_on_the_order_of_arrival(tmp_path) -> None:
    messages = [
        admit(),
        hl7_adt("M3", "update", NHS, "V1", T0 + timedelta(hours=1), diagnosis="J44.1"),
        discharge(),
        hl7_adt("M4", "cancel_discharge", NHS, "V1", T0 + timedelta(hours=6)),
        discharge(mid="M5", at=T0 + timedelta(hours=7)),
        hl7_adt("M6", "admit", OTHER, "V2", T0, start=T0, admission_method="11", site_code="RXX01"),
        hl7_adt("M7", "cancel_admit", OTHER, "V2", T0 + timedelta(hours=2)),
    ]
    seen = set()
    for i, order in enumerate(itertools.islice(itertools.permutations(messages), 0, 5040, 503)):
        home = Settings(home=tmp_path / str(i), pseudonym_key="s" * 32)
        for m in order:  # one message per delivery: the store sees them in this order
            run(home, m)
        out = rows(home)
        seen.add((out["apc_spells"].to_json(), out["ae_attendances"].to_json()))
    assert len(seen) == 1
    apc = json.loads(next(iter(seen))[0])
    assert list(apc["spell_id"].values()) == ["V1"] and list(apc["primary_diagnosis"].values()) == ["J441"]


def test_fhir_encounter_versions_admit_then_discharge(home) -> None:
    first = fhir_encounter(
        "enc1", 1, "in-progress", NHS, "F1", T0, start=T0, admission_method="21", site_code="RXX01", diagnosis="I21.9"
    )
    second = fhir_encounter(
        "enc1", 2, "finished", NHS, "F1", T0 + timedelta(hours=9), start=T0, end=T0 + timedelta(hours=8)
    )
    report = run(home, fhir_bundle("b1", [second, first]))
    assert report.accepted == 2
    spell = rows(home)["apc_spells"].iloc[0]
    assert (spell.spell_id, str(spell.discharge_date), spell.primary_diagnosis) == ("F1", "2026-12-01", "I219")
    run(home, json.dumps(fhir_encounter("enc1", 3, "cancelled", NHS, "F1", T0 + timedelta(hours=10))))
    assert rows(home)["apc_spells"].empty


def test_fhir_emergency_encounter_is_an_ae_attendance(home) -> None:
    run(home, json.dumps(fhir_encounter("e", 1, "arrived", NHS, "A1", T0, emergency=True, start=T0, site_code="RXX03")))
    assert rows(home)["ae_attendances"].site_code.tolist() == ["RXX03"]


BAD = [
    ("unparseable", None, "this is not a message"),
    ("unparseable", None, "{not json"),
    ("unsupported_message", "MSH-9", admit().replace("ADT^A01^ADT_A01", "ORU^R01^ORU_R01")),
    ("unsupported_message", "MSH-9", admit().replace("ADT^A01^ADT_A01", "ADT^A31^ADT_A05")),
    ("missing_value", "MSH-10", admit(mid="")),
    ("missing_value", "PV1-19", admit(enc="")),
    ("missing_value", "PID-3", admit().replace("^^^NHS^NH", "^^^RXX^MR")),
    ("invalid_nhs_number", "nhs_number", admit().replace(NHS, BAD_CHECK)),
    ("wrong_type", "EVN-2", admit().replace(f"EVN|A01|{T0:%Y%m%d%H%M%S}", "EVN|A01|yesterday")),
    ("missing_value", "admission_method", admit(admission_method="")),
    ("unknown_code", "admission_method", admit(admission_method="99")),
    ("unknown_code", "primary_diagnosis", admit(diagnosis="NOTICD")),
    ("unknown_code", "site_code", admit(site_code="XYZ")),
    ("future_date", "occurred", admit(at=NOW + timedelta(days=1))),
    ("date_out_of_range", "admission_date", admit(start=datetime(1850, 1, 1))),
    ("end_before_start", "discharge_date", discharge(start=T0 + timedelta(hours=5, minutes=30))),
    ("unknown_reference", "site_code", admit(site_code="RZZ99")),
    ("unlinked", "nhs_number", admit().replace(NHS, OTHER)),
    ("identifier_in_id", "message_id", admit(mid=f"ADM-{NHS}")),
    ("identifier_in_id", "encounter_id", admit(enc=f"V{NHS[:3]} {NHS[3:6]} {NHS[6:]}")),
    (
        "invalid_resource",
        "Encounter",
        json.dumps({**fhir_encounter("x", 1, "in-progress", NHS, "F", T0), "period": {"start": "not a date"}}),
    ),
    ("unsupported_message", "resourceType", json.dumps({"resourceType": "Patient", "id": "p"})),
    (
        "missing_value",
        "Encounter.subject.identifier",
        json.dumps(
            {
                **fhir_encounter(
                    "x", 1, "in-progress", NHS, "F", T0, start=T0, admission_method="21", site_code="RXX01"
                ),
                "subject": {"reference": "Patient/1"},
            }
        ),
    ),
]


@pytest.mark.parametrize("reason,field,text", BAD, ids=[f"{r}-{f}-{i}" for i, (r, f, _t) in enumerate(BAD)])
def test_bad_messages_are_quarantined_with_their_reason_and_no_content(home, reason, field, text) -> None:
    known = Known(sites={"RXX01", "RXX02"}, people={Pseudonymiser(KEY).person_id(NHS)})
    report = run(home, text, known=known)
    assert (report.accepted, dict(report.quarantined)) == (0, {reason: 1})
    store = EventStore(events_root(home))
    q = store.quarantined()
    assert (q.reason.tolist(), q.field.astype(object).where(q.field.notna(), None).tolist()) == ([reason], [field])
    assert store.events().empty
    written = b"".join(p.read_bytes() for p in store.root.rglob("*") if p.is_file())
    assert NHS.encode() not in written and OTHER.encode() not in written and b"SYNTHETIC" not in written


def test_the_parsed_message_hides_the_nhs_number() -> None:
    parsed = parse(admit())[0]
    assert parsed.nhs_number == NHS and NHS not in repr(parsed)


def test_quarantine_keeps_no_identifier_a_sender_put_in_a_reported_field(home) -> None:
    text = json.dumps({"resourceType": f"Patient{NHS}", "id": "p"})
    mid = admit(mid=f"ID{NHS}").replace("ADT^A01^ADT_A01", f"ADT^{NHS}")
    report = run(home, text, mid)
    assert dict(report.quarantined) == {"unsupported_message": 2}
    written = b"".join(p.read_bytes() for p in EventStore(events_root(home)).root.rglob("*") if p.is_file())
    assert NHS.encode() not in written


def test_an_update_alone_of_an_encounter_the_events_never_opened_leaves_the_warehouse_row_alone(home) -> None:
    run(
        home,
        hl7_adt("U1", "update", NHS, "OLD1", T0, diagnosis="J44.1"),
        hl7_adt("U2", "cancel_discharge", NHS, "OLD2", T0),
    )
    out = rows(home)
    assert len(out["apc_spells"]) == 0 and len(out["apc_spells_removed"]) == 0


def test_a_prune_waits_for_a_reader_and_absorbed_ids_stay_duplicates(home) -> None:
    import threading

    store = EventStore(events_root(home))
    run(home, admit())
    run(home, discharge(), now=NOW + timedelta(minutes=1))
    files = store.batches()
    events = store.events()
    kept = events.message_id == "M2"
    done = threading.Event()
    with store.locked(shared=True):  # a reader part-way through: the prune must wait for it
        worker = threading.Thread(
            target=lambda: (store.prune(files, events[kept], events.message_id[~kept]), done.set())
        )
        worker.start()
        assert not done.wait(0.5) and store.batches() == files
    worker.join(10)
    assert done.is_set() and len(store.batches()) == 1 and store.events().message_id.tolist() == ["M2"]
    again = run(home, admit(), discharge())
    assert (again.accepted, again.duplicates) == (0, 2)


def test_the_index_date_follows_the_latest_admission_discharge_or_arrival() -> None:
    from datetime import date

    import pandas as pd

    from features.events.fold import fold
    from features.events.fold import index_date

    empty = fold(pd.DataFrame(columns=EventStore(Path("/nonexistent")).events().columns))
    day = date(2026, 12, 1)
    assert index_date(empty, day) == day
    apc = pd.DataFrame({"admission_date": [date(2026, 11, 28)], "discharge_date": [date(2026, 12, 1)]})
    ae = pd.DataFrame({"arrival_time": [pd.Timestamp("2026-12-02 23:50")]})
    assert index_date({"apc_spells": apc, "ae_attendances": ae.iloc[0:0]}, day) == date(2026, 12, 2)
    assert index_date({"apc_spells": apc, "ae_attendances": ae}, day) == date(2026, 12, 3)
    assert index_date({"apc_spells": apc.iloc[0:0], "ae_attendances": ae.iloc[0:0]}, date(2026, 12, 5)) == date(
        2026, 12, 5
    )


def test_sender_text_in_a_code_field_is_kept_only_when_it_is_a_code(home) -> None:
    """A name typed into a code field (the message type, the resource type, the encounter's class or status) never
    reaches the quarantine; a real code does (it tells the sender what to fix)."""
    sent = [
        admit(mid="m1").replace("ADT^A01^ADT_A01", "ORU^R01^ORU_R01"),
        admit(mid="m2").replace("ADT^A01^ADT_A01", "SMITH^JOHN"),
        json.dumps({"resourceType": "Observation", "id": "o"}),
        json.dumps({"resourceType": "Jones", "id": "j"}),
        json.dumps({**fhir_encounter("c", 1, "in-progress", NHS, "F", T0), "class": {"code": "ALICE"}}),
        json.dumps({**fhir_encounter("s", 1, "in-progress", NHS, "F", T0), "status": "planned"}),
    ]
    for text in sent:
        run(home, text)
    q = EventStore(events_root(home)).quarantined()
    assert sorted(q.detail) == sorted(
        [
            "ORU^R01",
            "not an HL7 message type",
            "Observation",
            "not a FHIR resource type",
            "not an ActCode encounter class",
            "planned",
        ]
    )
    written = b"".join(p.read_bytes() for p in EventStore(events_root(home)).root.rglob("*") if p.is_file())
    assert not any(name in written for name in (b"SMITH", b"JOHN", b"Jones", b"ALICE"))
