"""The listing record: who a worklist model put in a worklist band (or would have, but held them out at random),
and since when, kept at `$PHM_HOME/holdout/<model>.parquet` by the daily job so that monitoring and safe
retraining (`evaluation.programme.holdout`) can tell later whose outcomes the programme may have changed.

Pseudonyms and dates only (no NHS number, no score): one row per person, the first day listed, whether held out,
and the holdout share approved that day. The file is replaced atomically, under a lock: the daily job writes it,
and so does an event delta (`serving.batch.delta`) for the people its new scores list or hold out.
"""

from __future__ import annotations

import fcntl
import os
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from phm.core.settings import Settings

COLUMNS = ["person_id", "first_listed", "held_out", "share"]


class ListingRecordError(ValueError):
    """The listing record is missing or unreadable."""


def record_path(settings: Settings, model: str) -> Path:
    return settings.home / "holdout" / f"{model}.parquet"


def read(settings: Settings, model: str) -> pd.DataFrame:
    """The record (empty with its columns when none has been kept yet)."""
    path = record_path(settings, model)
    if not path.exists():
        return pd.DataFrame(
            {
                "person_id": pd.Series(dtype="int64"),
                "first_listed": pd.Series(dtype="datetime64[ns]"),
                "held_out": pd.Series(dtype=bool),
                "share": pd.Series(dtype="float64"),
            }
        )
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise ListingRecordError(f"{path}: unreadable listing record ({type(exc).__name__})") from None
    missing = set(COLUMNS) - set(frame.columns)
    if missing:
        raise ListingRecordError(f"{path}: missing column(s) {sorted(missing)}")
    frame["first_listed"] = pd.to_datetime(frame["first_listed"])
    return frame[COLUMNS]


def shown(settings: Settings, model: str) -> np.ndarray:
    """Pseudonyms of the people already listed and shown: they are never held out later (a coordinator's patient
    does not vanish from the worklist because the holdout grew)."""
    frame = read(settings, model)
    return frame.person_id[~frame.held_out].to_numpy("int64")


def record(settings: Settings, model: str, day: date, person_id: np.ndarray, held: np.ndarray, share: float) -> int:
    """Add the people listed (or held out) on `day` to the record; a person keeps their earliest day and whether
    they were held out then. Returns how many people are new to the record."""
    now = pd.DataFrame(
        {
            "person_id": np.asarray(person_id, "int64"),
            "first_listed": pd.Timestamp(day),
            "held_out": np.asarray(held, bool),
            "share": float(share),
        }
    )
    path = record_path(settings, model)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as lock:  # one read-modify-replace at a time (daily job, deltas)
        fcntl.flock(lock, fcntl.LOCK_EX)
        before = read(settings, model)
        at = pd.Index(before.person_id).get_indexer(now.person_id)
        if (at >= 0).all() and (before.first_listed.to_numpy()[at] <= np.datetime64(day)).all():
            return 0  # everyone is recorded from this day or earlier: nothing would change
        both = (pd.concat([before, now], ignore_index=True) if len(before) else now).sort_values(
            ["person_id", "first_listed"], kind="stable"
        )
        merged = both.drop_duplicates("person_id", keep="first").reset_index(drop=True)
        tmp = path.with_suffix(".parquet.tmp")
        merged.to_parquet(tmp, index=False)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    return int(len(merged) - len(before))
