"""Event deltas under an approved random holdout, where the events change whom it holds out: emergency admissions
on the snapshot's day push people just below the worklist bands into them, half of them in the holdout. The
delta must hold out exactly whom a full daily refresh at its index date holds out (bit for bit, with every rank,
band and reason); the people it lists or holds out join the listing record as it is published, and the
held-out are withheld from the worklist and care records."""

from __future__ import annotations

import shutil
from datetime import date, datetime, time

import duckdb
import numpy as np
import pandas as pd
import pytest
from support.homes import registry_copy, with_holdout

from evaluation.programme import listing
from evaluation.programme.holdout import held_out
from features.events.emit import hl7_adt
from features.events.merge import absorb
from features.events.store import EventStore, events_root, ingest
from features.sources.pseudonymise import Pseudonymiser
from models import specs
from phm.core.settings import DEMO_PSEUDONYM_KEY
from serving.batch.common import default_date
from serving.batch.daily import score_daily
from serving.batch.delta import refresh_delta
from serving.batch.roll import prepare_next
from serving.batch.store import current, snapshots_root
from training import tracking

MODEL = specs.worklist().name
SHARE = 0.3
PUSHED = 15  # people of each kind (in the holdout draw or not) given an emergency admission on the snapshot's day


def admissions(home, numbers: dict[int, str], people: list[int], day: date) -> list[str]:
    """An emergency admission on `day` for each person, discharged the same evening."""
    con = duckdb.connect(str(home.warehouse_path), read_only=True)
    site, diagnosis, method = con.execute(
        "SELECT site_code, primary_diagnosis, discharge_method FROM apc_spells WHERE admission_method = '21' "
        "AND discharge_method IS NOT NULL ORDER BY spell_id LIMIT 1"
    ).fetchone()
    con.close()
    at = lambda h: datetime.combine(day, time(h))  # noqa: E731
    out = []
    for i, person in enumerate(people):
        spell, nhs = f"PUSH{i}", numbers[person]
        kw = dict(start=at(0), admission_method="21", site_code=site, diagnosis=diagnosis)
        out.append(hl7_adt(f"PA{i}", "admit", nhs, spell, at(1), **kw))
        out.append(hl7_adt(f"PD{i}", "discharge", nhs, spell, at(18), end=at(0), discharge_method=method, **kw))
    return out


@pytest.fixture(scope="module")
def pushed(served_home, ics20k, tmp_path_factory):
    home = with_holdout(registry_copy(served_home, tmp_path_factory.mktemp("held_home")), SHARE)
    day = default_date(home.warehouse_path)
    score_daily(home, day)
    first = listing.read(home, MODEL).set_index("person_id")  # the daily job's record of the snapshot's day
    base = pd.read_parquet(prepare_next(home) / "scores.parquet")  # everyone as at the day after, without events
    # the highest-risk people below the bands there (not held out), in the holdout draw (not shown before) and not
    below = base[(base.band == "routine") & ~base.held_out].sort_values("risk", ascending=False)
    drawn = held_out(below.person_id.to_numpy(), MODEL, SHARE) & ~below.person_id.isin(listing.shown(home, MODEL))
    chosen = {k: below.person_id[mask].head(PUSHED).tolist() for k, mask in (("drawn", drawn), ("not", ~drawn))}
    patients = pd.read_parquet(ics20k.out_dir / "patients.parquet", columns=["nhs_number"])
    pseudo = Pseudonymiser(DEMO_PSEUDONYM_KEY.encode())
    numbers = {pseudo.person_id(n): n for n in patients.nhs_number}
    messages = admissions(home, numbers, chosen["drawn"] + chosen["not"], day)
    report = ingest(home, [("test", m) for m in messages], now=datetime.combine(day, time(19)))
    delta = refresh_delta(home, today=day)
    now, live = current(home)
    snapshot = snapshots_root(home) / now["snapshot_folder"]
    rolled = pd.read_parquet(snapshot / "rolled" / delta["index_date"] / "scores.parquet").set_index("person_id")
    full_home = with_holdout(registry_copy(served_home, tmp_path_factory.mktemp("held_full")), SHARE)
    shutil.copytree(
        snapshot, snapshots_root(full_home) / snapshot.name, ignore=shutil.ignore_patterns("deltas", "rolled")
    )
    absorb(home.warehouse_path, EventStore(events_root(home)).rows(), full_home.warehouse_path)
    full = pd.read_parquet(
        f"{score_daily(full_home, date.fromisoformat(delta['index_date']))['folder']}/scores.parquet"
    )
    tracking.configure(home)
    return {
        "home": home,
        "chosen": chosen,
        "first": first,
        "report": report,
        "delta": delta,
        "live": live.set_index("person_id"),
        "rolled": rolled,
        "full": full.set_index("person_id"),
    }


def test_the_delta_holds_out_whom_the_full_refresh_holds_out_bit_for_bit(pushed) -> None:
    live, full = pushed["live"], pushed["full"]
    assert pushed["report"].accepted == 4 * PUSHED and pushed["delta"]["base"] is not None
    assert len(live) == len(full) > 10_000 and set(live.index) == set(full.index)
    live = live.loc[full.index]
    assert np.array_equal(live.risk.to_numpy(), full.risk.to_numpy())
    for column in ("rank", "band", "held_out", "segment", "conditions"):
        assert live[column].tolist() == full[column].tolist(), column
    assert live.reasons.tolist() == full.reasons.tolist()
    assert pushed["delta"]["held_out"] == int(full.held_out.sum())


def test_people_pushed_into_the_bands_are_held_out_iff_drawn(pushed) -> None:
    live, rolled, chosen = pushed["live"], pushed["rolled"], pushed["chosen"]
    listed = live.loc[chosen["drawn"] + chosen["not"]]
    listed = listed[(listed.band != "routine") | listed.held_out]  # the model lists them now
    drawn = listed.index.isin(chosen["drawn"])
    assert drawn.sum() >= 3 and (~drawn).sum() >= 3
    assert listed.held_out[drawn].all() and not listed.held_out[~drawn].any()
    assert (listed.band[drawn] == "routine").all() and listed.reasons[drawn].isna().all()
    assert listed.reasons[~drawn].notna().all()
    newly = live.index[live.held_out & ~rolled.held_out.reindex(live.index)]
    assert set(newly) == set(listed.index[drawn])  # nobody else changed holdout status by being pushed in
    assert (rolled.held_out & ~live.held_out.reindex(rolled.index)).any()  # and some held-out were pushed out
    # ranks: the people shown are 1..S without gaps, the held-out just below them, as in the daily job
    shown = int((live.band != "routine").sum())
    assert sorted(live["rank"][live.band != "routine"]) == list(range(1, shown + 1))
    assert sorted(live["rank"][live.held_out]) == list(range(shown + 1, shown + int(live.held_out.sum()) + 1))


def test_people_the_delta_lists_or_holds_out_are_recorded_and_the_held_out_withheld(pushed) -> None:
    from fastapi.testclient import TestClient

    from serving import queries
    from serving.api import create_app
    from serving.schemas import Band, WorklistQuery
    from serving.state import ServiceState
    from serving.users import Role, add_user

    home, live, rolled = pushed["home"], pushed["live"], pushed["rolled"]
    record = listing.read(home, MODEL).set_index("person_id")
    newly = sorted(live.index[live.held_out & ~rolled.held_out.reindex(live.index)])
    # the delta recorded whom it listed and held out first (the daily job at the snapshot's day, the rest)
    day = pd.Timestamp(pushed["delta"]["index_date"])
    by_delta = record[record.first_listed == day]
    listed = live.index[(live.band != "routine") | live.held_out]
    assert set(record.index) == set(listed) | set(pushed["first"].index)
    assert set(by_delta.index) == set(listed) - set(pushed["first"].index)
    assert set(by_delta.index[by_delta.held_out]) == set(newly) - set(pushed["first"].index)
    unknown = sorted(by_delta.index[by_delta.held_out])  # held out by the delta alone
    assert unknown and set(pushed["chosen"]["not"]) & set(by_delta.index[~by_delta.held_out])
    person = unknown[0]
    practice = live.loc[person, "practice_code"]
    user, token = add_user(home.home, "coordinator_held", Role.coordinator, [practice], {practice})
    st = ServiceState(home)
    hidden = st.held_out.ids()  # the record's (anyone ever held out) and the delta's
    assert set(newly) <= hidden and hidden == set(record.index[record.held_out]) | set(live.index[live.held_out])
    rows = queries.worklist(st, user, WorklistQuery(min_band=Band.routine, top=10_000)).rows
    ours = set(live.index[live.practice_code == practice]) - hidden
    assert {int(r.person_id) for r in rows} == ours and person not in ours
    app = create_app()
    app.state.phm = st
    with TestClient(app) as c:
        auth = {"Authorization": f"Bearer {token}"}
        r = c.get(f"/fhir/RiskAssessment?patient={person}", headers=auth).json()
        assert r["total"] == 0 and r["entry"][0]["resource"]["issue"][0]["code"] == "suppressed"
        exported = c.get("/fhir/RiskAssessment/$export", headers=auth).text
        assert f'"{person}"' not in exported and len(exported.splitlines()) == len(ours)
        r = c.post("/score", json={"person_ids": [str(person)]}, headers=auth)
        assert r.status_code == 200 and r.json()["results"][0]["held_out"] is True
        assert r.json()["results"][0]["risk"] is None
