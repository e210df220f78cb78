"""What an incremental refresh keeps of its base: the population's bands as codes (the same ranking as `bands`),
only the asked-for people's stored features, and a lay-over that leaves the kept base as it was read."""

from __future__ import annotations

import numpy as np
import pandas as pd

from serving.batch.delta_apply import lay_over
from serving.batch.delta_base import feature_rows, forget, read_base
from serving.batch.ranking import band_codes, band_limits, band_names, bands

CUTS = [("very high", 0.01), ("high", 0.05), ("moderate", 0.2)]


def _reference(risk: np.ndarray, cutoffs) -> tuple[np.ndarray, np.ndarray]:
    """Ranks and bands as the daily job has always computed them (lowest band first, higher bands overwrite)."""
    order = np.argsort(-risk, kind="stable")
    rank = np.empty(risk.size, dtype=np.int64)
    rank[order] = np.arange(1, risk.size + 1)
    band = np.full(risk.size, "routine", dtype=object)
    for name, last in reversed(band_limits(cutoffs, risk.size)):
        band[rank <= last] = name
    return rank, band


def test_band_codes_rank_and_band_as_the_daily_job_does_ties_included() -> None:
    rng = np.random.default_rng(7)
    risk = np.round(rng.random(20_001), 3)  # many ties
    want_rank, want_band = _reference(risk, CUTS)
    rank, code = band_codes(risk, CUTS)
    assert np.array_equal(rank, want_rank)
    assert band_names(CUTS)[code].tolist() == want_band.tolist()
    rank2, band2 = bands(risk, CUTS)
    assert np.array_equal(rank2, want_rank) and band2.tolist() == want_band.tolist()


def _base(tmp_path, n: int = 5_000):
    rng = np.random.default_rng(3)
    ids = rng.permutation(np.arange(10**9, 10**9 + n, dtype=np.int64) * 7919)
    risk = rng.random(n)
    rank, band = bands(risk, CUTS)
    scores = pd.DataFrame(
        {"person_id": ids, "risk": risk, "rank": rank, "band": band, "practice_code": "P1", "reasons": None}
    )
    features = pd.DataFrame({"person_id": ids[::-1].copy(), "a": rng.random(n), "b": rng.random(n)})
    scores.to_parquet(tmp_path / "scores.parquet", index=False)
    features.to_parquet(tmp_path / "features.parquet", index=False, row_group_size=300)
    forget()
    return read_base(tmp_path), scores, features


def test_feature_rows_reads_exactly_the_asked_for_people(tmp_path) -> None:
    base, _scores, features = _base(tmp_path)
    asked = np.concatenate([features.person_id.to_numpy()[[4999, 0, 1234, 301, 299]], [12345]])  # 12345: absent
    got = feature_rows(base, asked, ["b", "a"])
    want = features[features.person_id.isin(asked)].sort_values("person_id")
    assert sorted(got.person_id.tolist()) == want.person_id.tolist()
    got = got.set_index("person_id").loc[want.person_id]
    assert np.array_equal(got.a.to_numpy(), want.a.to_numpy()) and np.array_equal(got.b.to_numpy(), want.b.to_numpy())
    assert len(feature_rows(base, np.array([12345]), ["a"])) == 0


def test_the_base_is_read_once_and_laying_over_it_leaves_it_as_read(tmp_path) -> None:
    base, scores, _features = _base(tmp_path)
    assert read_base(tmp_path) is base
    assert base.rows_of(scores.person_id.to_numpy()[[10, 20]]).tolist() == [10, 20]
    assert base.rows_of(np.array([12345])).tolist() == [-1]
    names = band_names(CUTS)
    assert names[base.band_code(names)].tolist() == scores.band.tolist()
    changed = pd.DataFrame({"person_id": scores.person_id[[10, 20]], "risk": [0.0, 1.0], "reasons": ["x", None]})
    out = lay_over(base.scores, changed, CUTS)
    assert out.risk.tolist()[10] == 0.0 and out.reasons.tolist()[10] == "x"
    pd.testing.assert_frame_equal(base.scores, scores)
    forget()
