"""Who the service treats as held out for the programme's evaluation: read from the real listing record, re-read
when it changes, and unknown (fail closed) when it cannot be read."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest

from evaluation.programme import listing
from phm.core.settings import Settings
from serving.holdout_view import HeldOut, HoldoutUnknown

MODEL = "emergency_admission"


def test_the_held_out_are_the_records_held_out_and_follow_its_changes(tmp_path: Path) -> None:
    s = Settings(home=tmp_path)
    view = HeldOut(s, MODEL)
    assert view.ids() == frozenset()  # no record yet: nobody held out
    listing.record(s, MODEL, date(2025, 1, 1), np.array([1, 2, 3]), np.array([False, True, False]), 0.1)
    assert view.ids() == {2}
    listing.record(s, MODEL, date(2025, 1, 2), np.array([3, 4]), np.array([True, True]), 0.1)
    assert view.ids() == {2, 4}  # 3 was listed and shown first, so stays shown


def test_an_unreadable_record_makes_the_holdout_unknown(tmp_path: Path) -> None:
    s = Settings(home=tmp_path)
    view = HeldOut(s, MODEL)
    listing.record(s, MODEL, date(2025, 1, 1), np.array([5]), np.array([True]), 0.1)
    assert view.ids() == {5}
    listing.record_path(s, MODEL).write_bytes(b"not parquet at all")
    with pytest.raises(HoldoutUnknown, match="person-level lookups are refused"):
        view.ids()


def test_the_live_scores_held_out_are_added_to_the_records(tmp_path: Path) -> None:
    """An event delta can hold out someone the daily job has not recorded yet: the service withholds them too."""
    s = Settings(home=tmp_path)
    live = frozenset({7})
    view = HeldOut(s, MODEL, live=lambda: live)
    assert view.ids() == {7}
    listing.record(s, MODEL, date(2025, 1, 1), np.array([1, 2]), np.array([False, True]), 0.1)
    assert view.ids() == {2, 7}
    live = frozenset({2})
    assert view.ids() == {2}


def test_recording_nobody_new_leaves_the_record_untouched(tmp_path: Path) -> None:
    """An event delta records whom it lists on every refresh: when nobody is new the file is not replaced, so the
    service does not re-read it."""
    s = Settings(home=tmp_path)
    assert listing.record(s, MODEL, date(2025, 1, 1), np.array([1, 2]), np.array([False, True]), 0.1) == 2
    before = listing.record_path(s, MODEL).stat()
    assert listing.record(s, MODEL, date(2025, 1, 2), np.array([2, 1]), np.array([False, False]), 0.1) == 0
    after = listing.record_path(s, MODEL).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert listing.record(s, MODEL, date(2025, 1, 2), np.array([3]), np.array([True]), 0.1) == 1
    assert HeldOut(s, MODEL).ids() == {2, 3}
