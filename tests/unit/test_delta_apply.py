"""Laying a delta over a snapshot: the changed rows replace theirs, everyone is re-ranked with the snapshot's cut-offs
exactly as the daily job ranks a fresh population, and people outside the delta keep their other columns."""

from __future__ import annotations

import numpy as np
import pandas as pd

from serving.batch.delta_apply import FLAG, lay_over
from serving.batch.ranking import bands

CUTS = [("very high", 0.1), ("high", 0.3)]


def test_a_delta_re_ranks_everyone_as_a_fresh_ranking_would() -> None:
    rng = np.random.default_rng(0)
    risk = rng.random(50)
    rank, band = bands(risk, CUTS)
    base = pd.DataFrame(
        {
            "person_id": np.arange(100, 150),
            "risk": risk,
            "rank": rank,
            "band": band,
            "reasons": [None] * 50,
            "segment": ["a"] * 50,
        }
    )
    changed = pd.DataFrame(
        {
            "person_id": [101, 140],
            "risk": [0.999, 0.0001],
            "reasons": ['[{"x": 1}]', None],
            "segment": ["b", "c"],
            FLAG: ["discharged today", None],
        }
    )
    out = lay_over(base, changed, CUTS)
    want = risk.copy()
    want[[1, 40]] = [0.999, 0.0001]
    rank2, band2 = bands(want, CUTS)
    assert out.person_id.tolist() == base.person_id.tolist()
    assert np.array_equal(out.risk.to_numpy(), want) and np.array_equal(out["rank"].to_numpy(), rank2)
    assert out.band.tolist() == band2.tolist() and out.loc[1, "rank"] == 1
    assert out.segment.tolist() == ["a", "b"] + ["a"] * 38 + ["c"] + ["a"] * 9
    assert out.loc[1, FLAG] == "discharged today" and out[FLAG].isna().sum() == 49
    assert base.loc[1, "risk"] == risk[1]  # the snapshot's frame is not changed


def test_a_delta_under_a_holdout_withholds_as_the_daily_job_does() -> None:
    """The `held_out` column, as the delta leaves it, moves those people to routine and just below the listed."""
    from serving.batch.ranking import withhold

    risk = np.linspace(0.9, 0.0, 20)  # ranks 1..20 in order; bands: ranks 1-2 very high, 3-6 high
    rank, band = bands(risk, CUTS)
    base = pd.DataFrame({"person_id": np.arange(20), "risk": risk, "rank": rank, "band": band, "held_out": False})
    changed = pd.DataFrame({"person_id": [7, 1], "risk": [0.95, 0.85], "held_out": [True, False]})
    out = lay_over(base, changed, CUTS)
    assert out.band.tolist()[:8] == ["very high", "high", "high", "high", "high", "routine", "routine", "routine"]
    assert out.held_out.tolist() == [False] * 7 + [True] + [False] * 12
    # by risk 7 is first, then 0..6; the listed are 7, 0..4: 0..4 shown as 1..5, held-out 7 just below; 5, 6 keep 7, 8
    assert out["rank"].tolist()[:8] == [1, 2, 3, 4, 5, 7, 8, 6]
    want_rank, want_band = bands(out.risk.to_numpy(), CUTS)
    withhold(want_band, out.held_out.to_numpy(), want_rank)
    assert np.array_equal(out["rank"].to_numpy(), want_rank) and out.band.tolist() == want_band.tolist()
