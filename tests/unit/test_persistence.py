"""The persistence of the top share, on hand-written scores: who is in the top group at each date and the share of
it still there a lag later (ties broken by person id; people no longer scored count as not retained)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from serving.governance.persistence import index_dates, retention, top_sets


def test_index_dates_step_back_by_months() -> None:
    assert index_dates(date(2025, 3, 31), 12, 3) == [
        date(2024, 3, 31),
        date(2024, 6, 30),
        date(2024, 9, 30),
        date(2024, 12, 31),
        date(2025, 3, 31),
    ]


def test_top_sets_and_retention() -> None:
    rows = []
    for day, risks in (
        ("2024-01-01", {1: 0.9, 2: 0.8, 3: 0.8, 4: 0.1, 5: 0.1}),  # top 40%: ceil(2) = 1 and 2 (2 < 3 on ties)
        ("2024-04-01", {1: 0.2, 2: 0.9, 3: 0.95, 4: 0.1, 5: 0.1}),
        ("2024-07-01", {2: 0.9, 3: 0.1, 4: 0.8, 5: 0.1}),
    ):  # person 1 gone: counts as not retained
        rows += [{"index_date": pd.Timestamp(day), "person_id": p, "risk": r} for p, r in risks.items()]
    tops = top_sets(pd.DataFrame(rows), 0.4)
    assert {d: sorted(v.tolist()) for d, v in tops.items()} == {
        "2024-01-01": [1, 2],
        "2024-04-01": [2, 3],
        "2024-07-01": [2, 4],
    }
    lags = {lag["months"]: lag for lag in retention(tops, 3, (3, 6, 12))}
    assert [(p["from"], p["to"], p["still_top"]) for p in lags[3]["pairs"]] == [
        ("2024-01-01", "2024-04-01", 1),
        ("2024-04-01", "2024-07-01", 1),
    ]
    assert (
        lags[3]["share"] == 0.5 and lags[6]["share"] == 0.5 and lags[12] == {"months": 12, "pairs": [], "share": None}
    )
    assert np.isclose(lags[6]["pairs"][0]["share"], 0.5)
    assert retention(tops, 3, (4,)) == [{"months": 4, "pairs": [], "share": None}]  # not a whole number of steps


def test_the_models_page_shows_persistence_under_the_disclosure_policy() -> None:
    """The Models page (every role) showed "3 of 7 still in the top group" (found by the disclosure red-team with
    a small top share): counts now pass the policy, and a share is shown only where the people who stayed and who
    left would both be."""
    from evaluation.disclosure import Policy
    from serving.governance.persistence import released

    rng = np.random.default_rng(0)
    days = ("2024-01-01", "2024-04-01", "2024-07-01")
    rows = [{"index_date": pd.Timestamp(d), "person_id": p, "risk": rng.random()} for d in days for p in range(7_000)]
    scored = pd.DataFrame(rows)
    result = {"people": {d: 7_000 for d in days}}
    small = released({**result, "lags": retention(top_sets(scored, 0.001), 3, (3, 6))}, Policy())  # top 7 people
    for lag in small["lags"]:
        assert lag["share"] is None
        for p in lag["pairs"]:
            assert p["top"] is None and p["still_top"] in (None, 0) and p["share"] is None
    large = released({**result, "lags": retention(top_sets(scored, 0.2), 3, (3, 6))}, Policy())  # top 1,400
    pair = large["lags"][0]["pairs"][0]
    assert pair["top"] == 1_400 and pair["still_top"] % 5 == 0 and pair["share"] == round(pair["share"], 3)
    assert large["people"] == {d: 7_000 for d in days} and large["lags"][0]["share"] is not None
