"""Training weights that keep a retrained model from learning the programme's success as lower risk (issue 23
part 4; `evaluation.programme.holdout`).

`TrainConfig.safe_learning`:
- "holdout": rows of people listed (and not held out) before the end of the row's outcome window get weight 0 (the
  programme may have changed their outcome); the held-out listed in that time get 1 / the holdout share, since each
  stands for the listed who were not held out; everyone else 1. Needs the listing record the daily job keeps
  (`evaluation.programme.listing`) with a holdout.
- "enrolment": without a holdout, the enrolled (outcomes coordinators recorded) before the end of the window get
  weight 0 and the other listed people are up-weighted (`evaluation.programme.holdout.enrolment_weights`); valid only
  if who enrols is unrelated to risk.
- "off": every row weight 1 (the naive retraining the benchmark `benchmarks.safe_learning` shows is biased).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from evaluation.programme import listing
from evaluation.programme.enrolment import EnrolmentFileError, outcome_enrolment
from evaluation.programme.holdout import enrolment_weights
from models.specs.base import ModelSpec
from phm.core.settings import Settings
from phm.operational.database import DatabaseError

Mode = Literal["off", "holdout", "enrolment"]


class SafeLearningError(ValueError):
    """Safe retraining cannot run (no listing record, no holdout, no enrolments)."""


def window_end(frame: pd.DataFrame, spec: ModelSpec) -> pd.Series:
    """The end of each row's outcome window (its index date plus the label's horizon)."""
    index = pd.to_datetime(frame["index_date"])
    months = spec.label.horizon_months
    return index + (pd.DateOffset(months=months) if months else pd.to_timedelta(spec.horizon_days, "D"))


def weights(settings: Settings, spec: ModelSpec, frame: pd.DataFrame, mode: Mode) -> np.ndarray:
    """One weight per row of `frame` (columns person_id, index_date) for `mode`."""
    if mode == "off":
        return np.ones(len(frame))
    end = window_end(frame, spec)
    record = listing.read(settings, spec.name).set_index("person_id")
    first = frame.person_id.map(record.first_listed)
    listed = (first.notna() & (first < end)).to_numpy()
    if mode == "holdout":
        if not record.held_out.any():
            raise SafeLearningError(
                f"{listing.record_path(settings, spec.name)}: no one has been held out yet; safe "
                f"retraining needs an approved holdout (`[policy.{spec.name}] holdout_share`) and "
                "daily runs that kept it (or use --safe-learning enrolment)"
            )
        held = listed & frame.person_id.map(record.held_out).eq(True).to_numpy()
        share = frame.person_id.map(record.share).to_numpy("float64")
        out = np.ones(len(frame))
        out[listed & ~held] = 0.0
        out[held] = 1.0 / share[held]
        return out
    try:
        enrolled = outcome_enrolment(settings)
    except (EnrolmentFileError, DatabaseError) as exc:
        raise SafeLearningError(f"safe retraining by enrolment: {exc}") from None
    since = frame.person_id.map(enrolled.set_index("person_id").enrol_date)
    was = (since.notna() & (since < end)).to_numpy()
    return enrolment_weights(was, listed | was)
