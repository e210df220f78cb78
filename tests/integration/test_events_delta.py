"""Equivalence of the incremental refresh: the last day of hospital activity is taken out of a 20,000-person
warehouse and replayed as an ADT/FHIR event stream (shuffled, with duplicates, a cancelled admission, a
cancelled-then-repeated discharge and malformed messages); the snapshot with its delta then equals, person by
person and bit for bit, a full daily refresh on the warehouse that absorbed the same events. Both run under an
approved random holdout (issue 23 part 4): the delta holds out exactly whom the full refresh holds out, and the
held-out are on no worklist, RiskAssessment or export.

The messages are built by `support.event_replay`."""

from __future__ import annotations

import random
import shutil
from datetime import datetime, time, timedelta

import numpy as np
import pandas as pd
import pytest
from support.event_replay import day_as_events, events_on
from support.homes import registry_copy, with_holdout

from features.events.merge import absorb
from features.events.store import EventStore, events_root, ingest
from features.sources.pseudonymise import Pseudonymiser
from phm.core.settings import DEMO_PSEUDONYM_KEY
from serving.batch.daily import score_daily
from serving.batch.delta import refresh_delta
from serving.batch.store import current, snapshots_root
from training import tracking

SHARE = 0.2  # an approved random holdout (tests/integration/test_events_holdout.py: the people a delta holds out)


@pytest.fixture(scope="module")
def replay(served_home, ics20k, tmp_path_factory):
    home = with_holdout(registry_copy(served_home, tmp_path_factory.mktemp("events_home")), SHARE)
    patients = pd.read_parquet(ics20k.out_dir / "patients.parquet", columns=["nhs_number"])
    pseudo = Pseudonymiser(DEMO_PSEUDONYM_KEY.encode())
    numbers = {pseudo.person_id(n): n for n in patients.nhs_number}
    messages, day, end = day_as_events(home, numbers)
    base_meta = score_daily(home, day)
    base = pd.read_parquet(f"{base_meta['folder']}/scores.parquet").set_index("person_id")
    rng = random.Random(24)
    stream = messages + rng.sample(messages, len(messages) // 10) + ["MSH|^~\\&|broken", "{}"]
    rng.shuffle(stream)
    received = datetime.combine(day, time(6))
    reports = [ingest(home, [("test", m) for m in stream[i : i + 50]], now=received) for i in range(0, len(stream), 50)]
    delta = refresh_delta(home, today=end)
    meta, live = current(home)
    # the full refresh: a second home whose warehouse absorbed the same events
    full_home = with_holdout(registry_copy(served_home, tmp_path_factory.mktemp("events_full")), SHARE)
    absorb(home.warehouse_path, EventStore(events_root(home)).rows(), full_home.warehouse_path)
    tracking.configure(full_home)
    full_meta = score_daily(full_home, day)
    full = pd.read_parquet(f"{full_meta['folder']}/scores.parquet").set_index("person_id")
    tracking.configure(home)
    return {
        "home": home,
        "messages": messages,
        "reports": reports,
        "delta": delta,
        "meta": meta,
        "live": live.set_index("person_id"),
        "full": full,
        "base": base,
        "end": end,
    }


def test_the_replayed_day_changes_scores(replay) -> None:
    live, base = replay["live"], replay["base"]
    reports = replay["reports"]
    assert sum(r.accepted for r in reports) == len(set(replay["messages"]))
    assert sum(r.duplicates for r in reports) == len(replay["messages"]) // 10
    assert sum(sum(r.quarantined.values()) for r in reports) == 2
    assert replay["delta"]["people"] > 10
    moved = (live.risk.reindex(base.index) != base.risk).sum()
    assert moved > 5 and (live["rank"].reindex(base.index) != base["rank"]).sum() > moved


def test_delta_equals_the_full_refresh_bit_for_bit(replay) -> None:
    live, full = replay["live"], replay["full"]
    assert len(live) == len(full) > 10_000 and set(live.index) == set(full.index)
    live = live.loc[full.index]
    assert np.array_equal(live.risk.to_numpy(), full.risk.to_numpy())
    for column in ("rank", "band", "held_out", "practice_code", "pcn_code", "segment", "conditions", "age_band", "sex"):
        assert live[column].tolist() == full[column].tolist(), column
    assert live.reasons.tolist() == full.reasons.tolist()
    assert np.array_equal(live.previous_risk.to_numpy(), full.previous_risk.to_numpy(), equal_nan=True)
    held = live.held_out.to_numpy(bool)  # the holdout is at work
    assert held.sum() > 10 and (live.band[held] == "routine").all() and live.reasons[held].isna().all()


def test_the_worklist_shows_who_was_discharged_after_an_emergency_admission(replay) -> None:
    live = replay["live"]
    flagged = live[live.event_flag == "discharged today after an emergency admission"]
    assert len(flagged) > 0
    assert replay["meta"]["delta"]["people"] == replay["delta"]["people"]
    # the replayed day is the one before the snapshot's: its index date holds them, no rolled base is needed
    assert replay["delta"]["index_date"] == replay["meta"]["date"] == replay["meta"]["index_date"]
    assert replay["delta"]["base"] is None


def test_the_coordinators_worklist_carries_the_flag_and_the_new_score(replay, tmp_path) -> None:
    from serving import queries
    from serving.schemas import Band, WorklistQuery
    from serving.state import ServiceState
    from serving.users import Role, add_user

    home = replay["home"]
    live = replay["live"]
    person = live[(live.event_flag == "discharged today after an emergency admission") & ~live.held_out].index[0]
    practice = live.loc[person, "practice_code"]
    user, _token = add_user(home.home, "coordinator", Role.coordinator, [practice], {practice})
    st = ServiceState(home)
    result = queries.worklist(st, user, WorklistQuery(min_band=Band.routine, top=10_000))
    row = next(r for r in result.rows if int(r.person_id) == int(person))
    assert row.event_flag == "discharged today after an emergency admission"
    assert row.risk == float(live.loc[person, "risk"]) and row.rank == int(live.loc[person, "rank"])
    # the held-out (the delta's among them) are on it at no band, and everyone else in the practice is
    ours = live[live.practice_code == practice]
    assert {int(r.person_id) for r in result.rows} == set(ours.index[~ours.held_out]) and ours.held_out.any()


def test_risk_assessments_out_to_care_records_validate_and_respect_scope(replay) -> None:
    from fastapi.testclient import TestClient
    from fhir.resources.R4B.bundle import Bundle
    from fhir.resources.R4B.riskassessment import RiskAssessment

    from serving.api import create_app
    from serving.state import ServiceState
    from serving.users import Role, add_user

    home, live = replay["home"], replay["live"]
    person = live[(live.event_flag == "discharged today after an emergency admission") & ~live.held_out].index[0]
    practice = live.loc[person, "practice_code"]
    shown = live[(live.practice_code == practice) & ~live.held_out]
    hidden = live.index[(live.practice_code == practice) & live.held_out]
    other = sorted(set(live.practice_code) - {practice})[0]
    tokens = {
        name: add_user(home.home, name, role, practices, {practice, other})[1]
        for name, role, practices in (
            ("fhir_in", Role.coordinator, [practice]),
            ("fhir_out", Role.coordinator, [other]),
            ("fhir_ds", Role.data_scientist, []),
        )
    }
    app = create_app()
    app.state.phm = ServiceState(home)
    with TestClient(app) as c:

        def get(path, who):
            return c.get(path, headers={"Authorization": f"Bearer {tokens[who]}"})

        r = get(f"/fhir/RiskAssessment?patient={person}", "fhir_in")
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+json")
        bundle = Bundle.model_validate(r.json())
        assert bundle.total == 1
        ra = RiskAssessment.model_validate(r.json()["entry"][0]["resource"])
        assert ra.subject.identifier.value == str(person)
        assert float(ra.prediction[0].probabilityDecimal) == float(live.loc[person, "risk"])
        assert ra.prediction[0].qualitativeRisk.text == live.loc[person, "band"]
        assert ra.method.coding[0].code == "emergency_admission" and ra.method.coding[0].version
        assert any("discharged today" in n.text for n in ra.note)
        if live.loc[person, "band"] != "routine":
            assert len(ra.basis) >= 1
        assert get(f"/fhir/RiskAssessment?patient={person}", "fhir_out").json()["total"] == 0
        assert get(f"/fhir/RiskAssessment?patient={person}", "fhir_ds").status_code == 403
        assert get("/fhir/RiskAssessment?patient=not-an-id", "fhir_in").status_code == 422
        r = get("/fhir/RiskAssessment/$export", "fhir_in")
        lines = [line for line in r.text.splitlines() if line]
        assert r.status_code == 200 and len(lines) == len(shown) and len(hidden)
        resources = [RiskAssessment.model_validate_json(line) for line in lines]
        assert {x.subject.identifier.value for x in resources} == {str(p) for p in shown.index}
        for p in hidden[:5]:  # a held-out person's search says so and gives no score
            r = get(f"/fhir/RiskAssessment?patient={p}", "fhir_in").json()
            assert r["total"] == 0 and r["entry"][0]["resource"]["issue"][0]["code"] == "suppressed"
        assert get(f"/fhir/RiskAssessment/$export?practice={other}", "fhir_in").status_code == 403


# --- events on the snapshot's own day: the delta moves to a later index date --------------------------------------
# (runs after the tests above, which read the home as the first replay left it)
@pytest.fixture(scope="module")
def next_day(replay, served_home, ics20k, tmp_path_factory):
    home, day = replay["home"], replay["meta"]["date"]
    day = datetime.fromisoformat(day).date()
    patients = pd.read_parquet(ics20k.out_dir / "patients.parquet", columns=["nhs_number"])
    pseudo = Pseudonymiser(DEMO_PSEUDONYM_KEY.encode())
    numbers = {pseudo.person_id(n): n for n in patients.nhs_number}
    messages, people = events_on(home, numbers, day)
    tracking.configure(home)
    report = ingest(home, [("test", m) for m in messages], now=datetime.combine(day, time(23)))
    delta = refresh_delta(home, today=day)
    meta, live = current(home)
    snapshot = snapshots_root(home) / meta["snapshot_folder"]
    rolled = pd.read_parquet(snapshot / "rolled" / delta["index_date"] / "scores.parquet").set_index("person_id")
    # the full refresh at the delta's index date, on the same data and the same earlier snapshots (for the trend)
    full_home = with_holdout(registry_copy(served_home, tmp_path_factory.mktemp("events_full_next")), SHARE)
    shutil.copytree(
        snapshot, snapshots_root(full_home) / snapshot.name, ignore=shutil.ignore_patterns("deltas", "rolled")
    )
    absorb(home.warehouse_path, EventStore(events_root(home)).rows(), full_home.warehouse_path)
    tracking.configure(full_home)
    full_meta = score_daily(full_home, datetime.fromisoformat(delta["index_date"]).date())
    full = pd.read_parquet(f"{full_meta['folder']}/scores.parquet").set_index("person_id")
    tracking.configure(home)
    return {
        "home": home,
        "day": day,
        "report": report,
        "people": people,
        "delta": delta,
        "meta": meta,
        "live": live.set_index("person_id"),
        "rolled": rolled,
        "full": full,
        "full_meta": full_meta,
    }


def test_events_on_the_snapshot_day_move_the_delta_to_the_next_index_date(next_day) -> None:
    day, delta = next_day["day"], next_day["delta"]
    assert next_day["report"].accepted == len(next_day["report"].people) + 30 > 60
    assert delta["index_date"] == str(day + timedelta(days=1)) == next_day["meta"]["index_date"]
    assert delta["base"] == f"rolled/{delta['index_date']}" and next_day["full_meta"]["date"] == delta["index_date"]


def test_the_events_of_the_morning_change_those_peoples_scores_at_once(next_day) -> None:
    live, rolled, people = (
        next_day["live"],
        next_day["rolled"],
        sorted(next_day["people"] & set(next_day["live"].index)),
    )
    changed = live.loc[people, "risk"] != rolled.loc[people, "risk"]
    assert changed.sum() > len(people) // 2
    with_events = set(EventStore(events_root(next_day["home"])).events().person_id.tolist())
    others = live.index.difference(sorted(with_events))
    assert np.array_equal(live.loc[others, "risk"].to_numpy(), rolled.loc[others, "risk"].to_numpy())


def test_next_day_delta_equals_the_full_refresh_at_its_index_date_bit_for_bit(next_day) -> None:
    live, full = next_day["live"], next_day["full"]
    assert len(live) == len(full) > 10_000 and set(live.index) == set(full.index)
    live = live.loc[full.index]
    assert np.array_equal(live.risk.to_numpy(), full.risk.to_numpy())
    for column in ("rank", "band", "held_out", "practice_code", "pcn_code", "segment", "conditions", "age_band", "sex"):
        assert live[column].tolist() == full[column].tolist(), column
    assert live.reasons.tolist() == full.reasons.tolist()
    assert np.array_equal(live.previous_risk.to_numpy(), full.previous_risk.to_numpy(), equal_nan=True)
    flagged = live.loc[sorted(next_day["people"] & set(live.index))].event_flag
    assert (flagged == "discharged today after an emergency admission").sum() >= 20


def test_the_worklist_says_its_scores_are_as_at_the_later_date(next_day) -> None:
    from serving import queries
    from serving.schemas import Band, WorklistQuery
    from serving.state import ServiceState
    from serving.users import Role, add_user

    home, live = next_day["home"], next_day["live"]
    person = sorted(next_day["people"] & set(live.index))[0]
    practice = live.loc[person, "practice_code"]
    user, _token = add_user(home.home, "coordinator_next", Role.coordinator, [practice], {practice})
    st = ServiceState(home)
    result = queries.worklist(st, user, WorklistQuery(min_band=Band.routine, top=10_000))
    assert result.snapshot_date == str(next_day["day"]) and result.index_date == next_day["delta"]["index_date"]
    # reasons on demand read the predictors the delta computed for this person, at its index date
    snapshot = snapshots_root(home) / next_day["meta"]["snapshot_folder"]
    newer = pd.read_parquet(snapshot / "deltas" / next_day["delta"]["delta"] / "features.parquet").set_index(
        "person_id"
    )
    found, values = st.features_for([person])
    assert found == [person] and np.array_equal(values[0], newer.loc[person].to_numpy(dtype="float64"))
    assert result.events_to == next_day["delta"]["last_event_received"]
    row = next(r for r in result.rows if int(r.person_id) == person)
    assert row.risk == float(live.loc[person, "risk"]) and row.rank == int(live.loc[person, "rank"])


def test_risk_assessments_are_dated_as_at_the_deltas_index_date(next_day) -> None:
    from fhir.resources.R4B.riskassessment import RiskAssessment

    from serving.fhir_risk import risk_assessment

    person = sorted(next_day["people"] & set(next_day["live"].index))[0]
    frame = next_day["live"].reset_index()
    row = next(frame[frame.person_id == person].itertuples(index=False))
    ra = RiskAssessment.model_validate(risk_assessment(row, next_day["meta"]))
    assert str(ra.occurrenceDateTime) == next_day["delta"]["index_date"]
    assert float(ra.prediction[0].probabilityDecimal) == float(row.risk)


def test_a_worker_takes_a_new_delta_over_the_same_base_without_re_reading_it(next_day) -> None:
    """(Last: it publishes another delta.) A worker serving a delta picks up the next one over the same rolled base
    by reading only the delta, and then serves exactly what a freshly started worker serves."""
    from serving.state import ServiceState

    home = next_day["home"]
    st = ServiceState(home)
    held = st.bundle.held
    assert held is not None and held.folder.name == next_day["delta"]["index_date"]
    tracking.configure(home)
    again = refresh_delta(home, today=next_day["day"])
    st.maybe_refresh()
    assert st.bundle.held is held and st.bundle.meta["delta_folder"] == again["delta"]
    # the held base is as read from disk: laying deltas over it changed nothing in it
    pd.testing.assert_frame_equal(held.scores, pd.read_parquet(held.folder / "scores.parquet"))
    fresh = ServiceState(home)
    assert fresh.bundle.held is not held and fresh.bundle.meta["delta_folder"] == again["delta"]
    pd.testing.assert_frame_equal(st.bundle.scores, fresh.bundle.scores)
    assert st.bundle.position == fresh.bundle.position
    assert st.bundle.columns.keys() == fresh.bundle.columns.keys() and len(st.bundle.columns) == 6
    for name, values in fresh.bundle.columns.items():
        assert np.array_equal(st.bundle.columns[name], values), name
    people = sorted(next_day["people"] & set(next_day["live"].index)) + list(next_day["live"].index[:50])
    found, values = st.features_for(people)
    found_fresh, values_fresh = fresh.features_for(people)
    assert found == found_fresh and np.array_equal(values, values_fresh)
    assert st.bundle.release.cells == fresh.bundle.release.cells


def test_an_edited_rolled_base_or_delta_is_not_read(next_day) -> None:
    """(After the last: it alters the home.) The rolled base and each delta keep their files' SHA-256 as the snapshot
    does: one edited since it was written stops the read, naming it (it had been laid over the worklist as is)."""
    from serving.batch.snapshot_files import SnapshotAltered

    home = next_day["home"]
    meta, _ = current(home)
    snapshot = snapshots_root(home) / meta["snapshot_folder"]
    for table in (
        snapshot / "deltas" / meta["delta_folder"] / "scores.parquet",
        snapshot / meta["delta"]["base"] / "scores.parquet",
    ):
        good = table.read_bytes()
        frame = pd.read_parquet(table)
        frame.loc[frame.index[0], "risk"] = 0.99
        frame.to_parquet(table, index=False)
        with pytest.raises(SnapshotAltered, match="scores.parquet"):
            current(home)
        table.write_bytes(good)
        assert current(home)[0]["delta_folder"] == meta["delta_folder"]
