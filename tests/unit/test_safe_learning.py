"""Learning safely when the model changes care: the random holdout (`evaluation.programme.holdout`), the listing
record (`evaluation.programme.listing`), the daily job's hold-out step (`serving.batch.ranking.hold_out`), safe
training weights (`training.safe_learning`) and the holdout as part of the approved configuration. The end-to-end
effect on a retrained model is shown by `python -m benchmarks.safe_learning`."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evaluation.programme import listing
from evaluation.programme.holdout import draws, enrolment_weights, held_out, safe_weights
from models import specs
from models.specs.policy import PolicyError
from phm.core.settings import OperatingPolicy, Settings
from serving.batch.ranking import hold_out
from serving.governance.configuration import current, differences
from training.safe_learning import SafeLearningError, weights

MODEL = specs.worklist().name


def settings(tmp_path: Path, **policy) -> Settings:
    return Settings(home=tmp_path, policy={k: OperatingPolicy(**v) for k, v in policy.items()})


def test_the_holdout_is_a_stable_uniform_draw_per_person_and_model() -> None:
    ids = np.arange(1, 40_001)
    u = draws(ids, MODEL)
    assert np.array_equal(u, draws(ids, MODEL)) and not np.array_equal(u, draws(ids, "another_model"))
    assert u.min() >= 0 and u.max() < 1
    # 40,000 uniform draws: each tenth holds 4,000 +- 4 standard deviations (sd = 60)
    counts = np.bincount((u * 10).astype(int), minlength=10)
    assert np.abs(counts - 4000).max() < 240
    share = held_out(ids, MODEL, 0.05)
    assert abs(share.mean() - 0.05) < 4 * np.sqrt(0.05 * 0.95 / ids.size)
    assert not (share & ~held_out(ids, MODEL, 0.1)).any()  # held at 5% is held at 10%
    assert not held_out(ids, MODEL, 0.0).any()
    with pytest.raises(ValueError, match="not in"):
        held_out(ids, MODEL, 1.0)


def test_safe_weights_drop_the_treated_and_stand_the_held_out_for_the_listed() -> None:
    treated = np.array([1, 1, 1, 0, 0, 0], bool)
    held = np.array([0, 0, 0, 1, 0, 0], bool)
    assert safe_weights(treated, held, 0.25).tolist() == [0, 0, 0, 4, 1, 1]
    with pytest.raises(ValueError, match="both treated and held out"):
        safe_weights(treated, treated, 0.25)
    with pytest.raises(ValueError, match="holdout share"):
        safe_weights(treated, held, 0.0)


def test_enrolment_weights_drop_the_enrolled_and_up_weight_the_other_listed() -> None:
    enrolled = np.array([1, 1, 0, 0, 0], bool)
    listed = np.array([1, 1, 1, 1, 0], bool)
    assert enrolment_weights(enrolled, listed).tolist() == [0, 0, 2, 2, 1]
    with pytest.raises(ValueError, match="not listed"):
        enrolment_weights(enrolled, np.zeros(5, bool))


def test_the_listing_record_keeps_each_persons_first_day(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert listing.read(s, MODEL).empty and listing.shown(s, MODEL).size == 0
    assert listing.record(s, MODEL, date(2025, 1, 1), np.array([1, 2, 3]), np.array([False, True, False]), 0.1) == 3
    assert listing.record(s, MODEL, date(2025, 1, 2), np.array([3, 4]), np.array([True, False]), 0.1) == 1
    frame = listing.read(s, MODEL).set_index("person_id")
    assert frame.first_listed.dt.date.to_dict() == {
        1: date(2025, 1, 1),
        2: date(2025, 1, 1),
        3: date(2025, 1, 1),
        4: date(2025, 1, 2),
    }
    assert frame.held_out.to_dict() == {1: False, 2: True, 3: False, 4: False}
    assert sorted(listing.shown(s, MODEL).tolist()) == [1, 3, 4]
    assert "nhs" not in " ".join(frame.columns).lower()


def test_the_daily_hold_out_hides_the_held_out_but_never_someone_already_shown(tmp_path: Path) -> None:
    s = settings(tmp_path)
    ids = np.arange(1, 2001)
    band = np.where(ids <= 1000, "raised", "routine").astype(object)
    expected = held_out(ids[:1000], MODEL, 0.2)
    listed, held = hold_out(s, MODEL, ids, band.copy(), 0.0)
    assert listed.sum() == 1000 and not held.any()
    b, rank = band.copy(), ids.copy()  # rank = id here
    listed, held = hold_out(s, MODEL, ids, b, 0.2, rank)
    assert np.array_equal(held[:1000], expected) and not held[1000:].any() and 150 < held.sum() < 250
    assert (b[held] == "routine").all() and (b[listed & ~held] == "raised").all()
    # the shown keep their order at ranks 1..S, the held-out follow them, everyone else keeps their rank
    shown = int((listed & ~held).sum())
    assert np.array_equal(rank[listed & ~held], np.arange(1, shown + 1))
    assert np.array_equal(rank[held], np.arange(shown + 1, 1001)) and np.array_equal(rank[1000:], ids[1000:])
    # someone shown yesterday (recorded as not held out) stays listed even if the holdout now covers them
    first = ids[:1000][expected][0]
    listing.record(s, MODEL, date(2025, 1, 1), np.array([first]), np.array([False]), 0.0)
    listed, held = hold_out(s, MODEL, ids, band.copy(), 0.2)
    assert not held[first - 1] and held.sum() == expected.sum() - 1


def test_training_weights_from_the_listing_record(tmp_path: Path) -> None:
    s = settings(tmp_path)
    spec = specs.worklist()
    frame = pd.DataFrame({"person_id": [1, 2, 3, 4], "index_date": pd.to_datetime(["2024-01-01"] * 4)})
    assert weights(s, spec, frame, "off").tolist() == [1, 1, 1, 1]
    with pytest.raises(SafeLearningError, match="no one has been held out"):
        weights(s, spec, frame, "holdout")
    # 1 listed before the window ends (treated), 2 held out then, 3 listed only after the window, 4 never listed
    listing.record(s, MODEL, date(2024, 6, 1), np.array([1, 2]), np.array([False, True]), 0.25)
    listing.record(s, MODEL, date(2025, 2, 1), np.array([3]), np.array([False]), 0.25)
    assert weights(s, spec, frame, "holdout").tolist() == [0, 4, 1, 1]
    with pytest.raises(SafeLearningError, match="safe retraining by enrolment"):  # no outcome store here
        weights(s, spec, frame, "enrolment")


def test_the_holdout_is_part_of_the_approved_configuration(tmp_path: Path) -> None:
    fs = specs.get(MODEL).features
    plain = current(settings(tmp_path), MODEL, 1, fs.definition_hash(), source="synthetic ICS")
    held = current(
        settings(tmp_path, **{MODEL: {"holdout_share": 0.05}}), MODEL, 1, fs.definition_hash(), source="synthetic ICS"
    )
    assert plain.holdout_share == 0 and held.holdout_share == 0.05
    assert differences(plain, held) == ["random holdout: none → 5% of the people the model would list"]
    assert plain.fingerprint() != held.fingerprint()
    # without a holdout the fingerprint is the one recorded before holdouts existed
    old = {k: v for k, v in plain.model_dump(mode="json").items() if k != "holdout_share"}
    body = json.dumps(old, sort_keys=True, separators=(",", ":"))
    assert plain.fingerprint() == hashlib.sha256(body.encode()).hexdigest()
    column = specs.columns()[0].name
    with pytest.raises(PolicyError, match="has no holdout"):
        current(
            settings(tmp_path, **{column: {"holdout_share": 0.05}}),
            column,
            1,
            specs.get(column).features.definition_hash(),
            source="synthetic ICS",
        )
