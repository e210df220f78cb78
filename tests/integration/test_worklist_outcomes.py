"""The worklist with outcomes, in-band runs and the persistence of the top 5%, in process on a copy of the served
home: outcomes hide people for the configured period and they return afterwards (the clock is moved); each row's
in-band run and the "new since last week" filter match a direct reading of the kept snapshots; the persistence
figures match a direct computation from the feature table of the past index dates."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import mlflow
import pandas as pd
import pytest

from phm.core.settings import OutcomeHide, OutcomeSettings, Settings
from serving import outcomes, queries
from serving.batch.store import dated_snapshots
from serving.governance.persistence import run_persistence, table_path
from serving.queries import QueryError
from serving.schemas import WorklistQuery
from serving.state import ServiceState
from serving.users import Role, User
from support.homes import registry_copy
from training import tracking

pytestmark = pytest.mark.slow
T0 = datetime(2031, 3, 2, 10, 0, 0)
IN_BAND = ("very high", "high", "raised")


@pytest.fixture(scope="module")
def st(served_home, tmp_path_factory) -> ServiceState:
    home = registry_copy(served_home, tmp_path_factory.mktemp("worklist_outcomes"), snapshots=True)
    return ServiceState(Settings(home=home.home, outcomes=OutcomeSettings(hide=OutcomeHide(declined=30, contacted=7))))


def coordinator(st: ServiceState, practices: list[str] | None = None) -> User:
    scores = st.bundle.scores
    return User(
        name="Cy",
        role=Role.coordinator,
        practices=practices or [scores.practice_code.mode()[0]],
        token_sha256="0" * 64,
        created="2026-01-01",
    )


def ids(result) -> list[str]:
    return [r.person_id for r in result.rows]


def test_outcomes_hide_people_for_the_configured_period_then_they_return(st) -> None:
    u = coordinator(st)
    q = WorklistQuery(top=10_000)
    before = queries.worklist(st, u, q, now=T0)
    declined, contacted, enrolled = ids(before)[:3]
    locate = outcomes.service_locator(st)
    outcomes.record(st.settings, locate, u, declined, "declined", "not now", now=T0)
    outcomes.record(st.settings, locate, u, contacted, "contacted", None, now=T0)
    outcomes.record(st.settings, locate, u, enrolled, "enrolled", None, now=T0)
    for days, gone in (
        (1, {declined, contacted, enrolled}),
        (8, {declined, enrolled}),
        (31, {enrolled}),
        (3000, {enrolled}),
    ):
        now = T0 + timedelta(days=days)
        found = queries.worklist(st, u, q, now=now)
        assert ids(found) == [p for p in ids(before) if p not in gone], days
        assert found.hidden == len(gone) and found.total_matching == before.total_matching - len(gone)
        assert {r["person_id"] for r in outcomes.hidden(st.settings, u, now=now)} == gone
    # out of scope: refused, nothing stored
    other = coordinator(st, [p for p in st.bundle.practices if p not in u.practices][:1])
    with pytest.raises(QueryError) as refused:
        outcomes.record(st.settings, locate, other, declined, "enrolled", None, now=T0)
    assert refused.value.status == 403
    assert [
        r["outcome"] for r in outcomes.hidden(st.settings, u, now=T0 + timedelta(days=1)) if r["person_id"] == declined
    ] == ["declined"]


def direct_runs(st: ServiceState) -> tuple[dict[int, date], date]:
    """Each person in a band today -> first day of their unbroken in-band run, read straight from the snapshots."""
    days: dict[date, pd.DataFrame] = {}
    for d, folder in dated_snapshots(st.settings):
        days[d] = pd.read_parquet(folder / "scores.parquet", columns=["person_id", "band"])
    today = date.fromisoformat(st.bundle.meta["date"])
    order = sorted((d for d in days if d <= today), reverse=True)
    banded = {d: set(days[d].person_id[days[d].band.isin(IN_BAND)]) for d in order}
    out = {}
    for pid in banded[today]:
        first = today
        for d in order[1:]:
            if pid not in banded[d]:
                break
            first = d
        out[pid] = first
    return out, today


def test_in_band_runs_and_new_since_last_week_match_the_snapshots(st) -> None:
    expected, today = direct_runs(st)
    assert len(dated_snapshots(st.settings)) >= 2
    u = coordinator(st, sorted(st.bundle.practices))
    rows = queries.worklist(st, u, WorklistQuery(top=10_000), now=T0 - timedelta(days=3650)).rows
    assert rows and {int(r.person_id): date.fromisoformat(r.in_band_since) for r in rows} == {
        p: expected[p] for p in (int(r.person_id) for r in rows)
    }
    assert all(r.days_in_band == (today - date.fromisoformat(r.in_band_since)).days for r in rows)
    assert {date.fromisoformat(r.in_band_since) for r in rows} == {today, today - timedelta(days=7)}  # both occur
    new = queries.worklist(st, u, WorklistQuery(top=10_000, new_within_days=7), now=T0 - timedelta(days=3650))
    assert ids(new) == [r.person_id for r in rows if r.in_band_since == str(today)]


def test_persistence_figures_match_a_direct_computation(st) -> None:
    result = run_persistence(st.settings, history_months=12, step_months=3, top_share=0.05)
    frame = pd.read_parquet(table_path(st.settings, result["model"]))
    tracking.configure(st.settings)
    model = mlflow.pyfunc.load_model(f"models:/{result['model']}@champion").unwrap_python_model().model
    frame["risk"] = model.predict_proba(frame[list(model.feature_names_in_)].astype("float64"))[:, 1]
    frame["day"] = pd.to_datetime(frame.index_date).dt.date
    top = {}
    for d, part in frame.groupby("day"):
        n = math.ceil(0.05 * len(part))
        top[d] = set(part.sort_values(["risk", "person_id"], ascending=[False, True]).person_id.head(n))
    assert sorted(str(d) for d in top) == result["index_dates"] and len(top) == 5
    for lag in result["lags"]:
        days = sorted(top)  # every 3 months, oldest first: a lag of L months is L / 3 places later
        pairs = list(zip(days, days[lag["months"] // 3 :]))
        kept = [len(top[a] & top[b]) for a, b in pairs]
        assert [(p["from"], p["to"], p["top"], p["still_top"]) for p in lag["pairs"]] == [
            (str(a), str(b), len(top[a]), k) for (a, b), k in zip(pairs, kept)
        ]
        assert lag["share"] == sum(kept) / sum(len(top[a]) for a, _ in pairs)
    assert [len(lag["pairs"]) for lag in result["lags"]] == [4, 3, 1]
    assert 0 < result["lags"][0]["share"] < 1
