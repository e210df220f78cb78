"""The daily job's scoring date: a date after the data (where everything since the data end would be scored as if
nothing had happened, and the snapshot served in place of every later correct one) or before the data cover the
model's look-back is refused, and nothing is written or published."""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from support.cli import run as phm
from support.homes import registry_copy, train_quickly

from evaluation.fairness.config import AuditConfig

from evaluation.programme import listing
from models import specs
from serving.batch import store
from serving.batch.common import SnapshotError, default_date
from serving.batch.daily import score_daily
from serving.governance.model_audit import audit_model
from serving.governance.signoff import decide, promote
from training import tracking


def _folders(home) -> set[str]:
    return {p.name for p in store.snapshots_root(home).iterdir()}


@pytest.mark.slow
def test_a_date_after_the_data_or_before_its_look_back_is_refused(served_home, tmp_path: Path) -> None:
    s = registry_copy(served_home, tmp_path / "home", snapshots=True)
    tracking.configure(s)
    latest = default_date(s.warehouse_path)
    live, before = store.live_date(s), _folders(s)
    with pytest.raises(SnapshotError, match=f"after the data.*the latest scoring date is {latest}"):
        score_daily(s, latest + timedelta(days=7))
    with pytest.raises(SnapshotError, match="before the data cover emergency_admission's 365-day look-back"):
        score_daily(s, date(2000, 1, 1))
    assert store.live_date(s) == live and _folders(s) == before  # nothing written, the live snapshot served


@pytest.mark.slow
def test_a_model_beside_the_worklist_with_nobody_eligible_leaves_its_column_empty(served_home, tmp_path: Path) -> None:
    """On 2020-04-01 nobody has home monitoring yet, so the flare-up model applies to nobody: the worklist is still
    scored and published (the job had failed with EmptyCohortError, leaving yesterday's worklist)."""
    s = registry_copy(served_home, tmp_path / "home")
    flare = specs.get("flare_up")
    version = train_quickly(s, flare.name).version
    out = audit_model(s, flare.name, version, AuditConfig(bootstrap_draws=20, top_share=flare.daily.top_share))
    decide(s, flare.name, version, "approved", "Dr Test", "test approval", accept_flags=bool(out.result.flags))
    promote(s, flare.name, version, by="tests")
    meta = score_daily(s, date(2020, 4, 1), publish=True)
    assert meta["models"][flare.name]["people"] == 0 and meta["published"]
    scores = pd.read_parquet(Path(meta["folder"]) / "scores.parquet")
    assert len(scores) == meta["people"] > 0 and scores[flare.daily.column].isna().all()


@pytest.mark.slow
def test_a_column_the_features_need_gone_from_the_warehouse_is_a_clear_refusal(served_home, tmp_path: Path) -> None:
    """A source column renamed after training: the real command says which column is missing and exits 2, with no
    traceback, and the live snapshot stays served."""
    s = registry_copy(served_home, tmp_path / "home", snapshots=True)
    with duckdb.connect(str(s.warehouse_path)) as con:
        con.execute("ALTER TABLE apc_spells RENAME COLUMN critical_care_days TO cc_days")
    live = store.live_date(s)
    done = phm("score", "daily", home=s.home)
    said = done.stdout + done.stderr
    assert done.returncode == 2 and "Traceback" not in said, said[-2000:]
    assert "missing columns: apc_spells.critical_care_days" in " ".join(said.split())
    assert store.live_date(s) == live


@pytest.mark.slow
def test_a_past_day_kept_aside_lists_no_one_in_the_listing_record(served_home, tmp_path: Path) -> None:
    """A re-score of a past day that is not served puts no one in the listing record: nobody was shown that list, and
    the record decides safe retraining's weights and who may be held out later (it had added everyone it would
    list, as listed since that past day)."""
    s = registry_copy(served_home, tmp_path / "home", snapshots=True)
    shutil.copytree(served_home.home / "holdout", s.home / "holdout")
    tracking.configure(s)
    before = listing.read(s, specs.worklist().name)
    assert len(before)
    meta = score_daily(s, date.fromisoformat(store.live_date(s)) - timedelta(days=14))
    assert not meta["published"]
    pd.testing.assert_frame_equal(listing.read(s, specs.worklist().name), before)


@pytest.mark.slow
def test_the_trend_compares_only_with_scores_of_the_same_model_version(served_home, tmp_path: Path) -> None:
    """A new champion's risks are not comparable with the old one's: today's trend is not taken against the week-old
    snapshot version 1 ranked (every arrow and the 'rise' sort would show the change of model, not of the person)."""
    s = registry_copy(served_home, tmp_path / "home", snapshots=True)
    model = specs.worklist().name
    version = train_quickly(s, model).version
    out = audit_model(s, model, version, AuditConfig(bootstrap_draws=20))
    decide(s, model, version, "approved", "Dr Test", "test approval", accept_flags=bool(out.result.flags))
    promote(s, model, version, by="tests")
    meta = score_daily(s, date.fromisoformat(store.live_date(s)))
    assert meta["models"][model]["version"] == str(version) != "1"
    scores = pd.read_parquet(Path(meta["folder"]) / "scores.parquet")
    assert meta["previous"] is None and scores.previous_risk.isna().all()
