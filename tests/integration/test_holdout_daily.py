"""An approved random holdout in the daily job: the changed policy stops the job until a safety officer reviews
it (recorded in the hazard log, naming the holdout); then the held-out people are never listed or explained, and
every listed and held-out person is kept in the listing record for monitoring and safe retraining (which
tests/e2e/test_monitoring.py exercises). Event deltas apply the same holdout when they re-rank
(tests/integration/test_events_delta.py, test_events_holdout.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from support.homes import registry_copy

from evaluation.programme import listing
from evaluation.programme.holdout import held_out
from models import specs
from phm.core.settings import OperatingPolicy, Settings
from serving.batch.common import SnapshotError, default_date
from serving.batch.daily import score_daily
from serving.governance import hazard_log
from serving.governance.hazard_log import hazard_log_path
from serving.governance.safety_case import review_change
from training import tracking

MODEL = specs.worklist().name
SHARE = 0.2


@pytest.mark.slow
def test_an_approved_holdout_is_never_listed_and_is_recorded(served_home, tmp_path: Path) -> None:
    base = registry_copy(served_home, tmp_path / "home")
    s = Settings(home=base.home, policy={MODEL: OperatingPolicy(holdout_share=SHARE)})
    tracking.configure(s)
    day = default_date(s.warehouse_path)
    with pytest.raises(SnapshotError, match="random holdout: none → 20% of the people the model would list"):
        score_daily(s, day)
    review_change(s, MODEL, 1, "approved", "Dr Test", "a 20% holdout so that retraining can learn safely")
    entry = hazard_log.read(hazard_log_path(s))[-1]
    assert entry["kind"] == "change_review" and entry["configuration"]["holdout_share"] == SHARE
    meta = score_daily(s, day)
    scores = pd.read_parquet(Path(meta["folder"]) / "scores.parquet").set_index("person_id")
    record = listing.read(s, MODEL).set_index("person_id")
    held = record.index[record.held_out]
    last_band_share = specs.worklist().daily.bands[-1][1]
    assert len(record) == math.ceil(last_band_share * len(scores))  # everyone the model would list
    assert meta["holdout"] == {"share": SHARE, "held_out": len(held)}
    assert 0.1 < len(held) / len(record) < 0.3
    assert (held_out(record.index.to_numpy(), MODEL, SHARE) == record.held_out.to_numpy()).all()
    assert (scores.loc[held, "band"] == "routine").all() and scores.loc[held, "reasons"].isna().all()
    assert set(scores.index[scores.band != "routine"]) == set(record.index[~record.held_out])
    assert (record.first_listed.dt.date == day).all()
    # the shown keep ranks 1..S with no gap; the held-out follow them
    shown = scores.band != "routine"
    assert sorted(scores.loc[shown, "rank"]) == list(range(1, int(shown.sum()) + 1))
    assert sorted(scores.loc[held, "rank"]) == list(range(int(shown.sum()) + 1, len(record) + 1))
    assert scores.held_out.sum() == len(held) and set(scores.index[scores.held_out]) == set(held)
