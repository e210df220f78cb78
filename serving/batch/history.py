"""New and persistent risk from the run of kept snapshots: when each person in a worklist band today first
entered a band in the unbroken run of snapshots up to today (a snapshot in which they were not in a band breaks
the run). The store keeps the latest `store.KEEP` snapshots, so a run longer than that reads as starting at the
oldest kept one (`since_oldest`)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from phm.core.settings import Settings
from serving.batch.store import dated_snapshots

IN_BAND_EXCLUDES = ("routine",)


def band_runs(settings: Settings, day: str, scores: pd.DataFrame) -> tuple[pd.DataFrame, str | None]:
    """(person_id, in_band_since) for today's people in a band, and the oldest snapshot date read (None when
    there are no earlier snapshots)."""
    today = date.fromisoformat(day)
    banded = scores.person_id[~scores.band.isin(IN_BAND_EXCLUDES)].to_numpy(dtype="int64")
    since = np.full(len(banded), np.datetime64(today, "D"))
    by_day: dict[date, object] = {}
    for d, folder in dated_snapshots(settings):  # sorted: the last folder of a day is its latest run
        if d < today:
            by_day[d] = folder
    alive = np.ones(len(banded), dtype=bool)
    oldest = str(min(by_day)) if by_day else None
    for d in sorted(by_day, reverse=True):
        if not alive.any():
            break
        earlier = pd.read_parquet(by_day[d] / "scores.parquet", columns=["person_id", "band"])
        was = earlier.person_id[~earlier.band.isin(IN_BAND_EXCLUDES)].to_numpy(dtype="int64")
        alive &= np.isin(banded, was)
        since[alive] = np.datetime64(d, "D")
    return pd.DataFrame({"person_id": banded, "in_band_since": since}), oldest
