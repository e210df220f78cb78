"""Spark batch jobs against their in-process twins, on the session's served home (a 20,000-person ICS and an
audited, approved champion): the daily snapshot scored on the executors equals the in-process snapshot (scores
to 1e-9, ranks, bands, reasons, trend) — the first snapshot (no earlier one: no trend on either engine) and a later
one (both compare with the same earlier snapshot), and under an approved random holdout — and the fairness audit
aggregated on Spark equals the in-process audit."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support.homes import registry_copy, with_holdout

from evaluation.programme import listing
from evaluation.programme.holdout import held_out
from evaluation.fairness.audit import AuditInputError, run_audit
from evaluation.fairness.config import AuditConfig
from evaluation.fairness.groups import STANDARD_COVERAGE, STANDARD_GROUPINGS, coverage_descriptions, standard_labels
from serving.governance.model_audit import audit_on_spark, load_scores
from phm.core.settings import Settings
from serving.batch.common import default_date
from serving.batch.daily import score_daily
from serving.batch.store import current
from models import specs
from training import tracking

pytestmark = pytest.mark.spark
MODEL = specs.worklist().name


@pytest.fixture(scope="module")
def home(served_home, tmp_path_factory) -> Settings:
    """Its own warehouse copy, snapshots and MLflow store (copied: the served home's registry is never touched)."""
    settings = registry_copy(served_home, tmp_path_factory.mktemp("spark_jobs_home"))
    tracking.configure(settings)
    return settings


def _snapshot(meta: dict) -> pd.DataFrame:
    """A snapshot's scores as the service reads them (a Spark snapshot is partitioned by practice), by person."""
    folder = Path(meta["folder"])
    scores = pd.read_parquet(folder / "scores.parquet")
    scores["practice_code"] = scores["practice_code"].astype(str)
    return scores.sort_values("person_id").reset_index(drop=True)


def test_spark_daily_snapshot_equals_the_in_process_one(spark, home) -> None:
    day = default_date(home.warehouse_path)
    # the first snapshots (a week before): nothing earlier, so neither engine has a trend (not even the other
    # engine's snapshot of the same day)
    first_local = score_daily(home, day - timedelta(days=7))
    first_spark = score_daily(home, day - timedelta(days=7), engine="spark")
    assert first_local["previous"] is None and first_spark["previous"] is None
    a0, b0 = _snapshot(first_local), _snapshot(first_spark)
    assert len(a0) == len(b0) > 10_000 and a0.previous_risk.isna().all() and b0.previous_risk.isna().all()
    assert np.max(np.abs(a0.risk.to_numpy() - b0.risk.to_numpy())) <= 1e-9
    # a week later: both compare with the latest snapshot of a week before (the Spark one, written last)
    local = score_daily(home, day)
    on_spark = score_daily(home, day, engine="spark")
    assert on_spark["engine"] == "spark" and local["engine"] == "duckdb"
    assert {k: on_spark[k] for k in ("date", "people", "band_counts", "worklist_model", "models", "previous")} == {
        k: local[k] for k in ("date", "people", "band_counts", "worklist_model", "models", "previous")
    }
    a = _snapshot(local)
    folder = Path(on_spark["folder"]) / "scores.parquet"
    assert folder.is_dir() and any(p.name.startswith("practice_code=") for p in folder.iterdir())  # partitioned
    b = current(home)[1].sort_values("person_id").reset_index(drop=True)  # as the service reads it
    assert len(a) == len(b) > 10_000
    assert np.max(np.abs(a.risk.to_numpy() - b.risk.to_numpy())) <= 1e-9
    for col in ("person_id", "practice_code", "pcn_code", "age_band", "sex", "segment", "conditions", "rank", "band"):
        assert a[col].astype(str).tolist() == b[col].astype(str).tolist(), col
    shown = a.band != "routine"
    assert a.reasons[shown].tolist() == b.reasons[shown].tolist() and b.reasons[~shown].isna().all()
    assert all(json.loads(r) for r in b.reasons[shown])
    before = b0.set_index("person_id").risk  # the trend joins the earlier snapshot, on both engines alike
    assert np.array_equal(b.previous_risk.to_numpy(), b.person_id.map(before).to_numpy(), equal_nan=True)
    assert np.array_equal(a.previous_risk.to_numpy(), b.previous_risk.to_numpy(), equal_nan=True)
    assert b.previous_risk.notna().mean() > 0.95
    features = pd.read_parquet(Path(on_spark["folder"]) / "features.parquet")
    assert len(features) == len(a) and features.drop(columns="person_id").dtypes.eq("float64").all()


def test_spark_audit_equals_the_in_process_audit(spark, home) -> None:
    cfg = AuditConfig(bootstrap_draws=60)
    frame, params = load_scores("emergency_admission", 1)
    frame = standard_labels(frame)
    local = run_audit(
        frame,
        STANDARD_GROUPINGS,
        cfg,
        {"model": "emergency_admission"},
        coverage=STANDARD_COVERAGE,
        coverage_descriptions=coverage_descriptions(frame, STANDARD_COVERAGE),
    )
    on_spark, _ = audit_on_spark(home, "emergency_admission", 1, cfg, None)
    assert on_spark.population["engine"] == "spark" and "aggregates only" in on_spark.population["collected"]

    def ratio_flags(result):  # need at equal score needs the person rows: in-process only
        return [c.model_dump() for c in result.flags if not c.metric.startswith("need_") and c.grouping != "overall"]

    assert ratio_flags(on_spark) == ratio_flags(local)
    assert on_spark.need == [] and "Spark" in on_spark.population["need_note"]
    # performance for everyone: sums exact; AUROC from the score bins on Spark
    a, b = local.absolute.metrics, on_spark.absolute.metrics
    for k in ("observed_to_expected", "mean_predicted", "event_rate"):
        assert b[k].value == pytest.approx(a[k].value, rel=1e-9)
    assert abs(b["auroc"].value - a["auroc"].value) < 0.01
    assert [f.metric for f in on_spark.absolute.flags] == [f.metric for f in local.absolute.flags]
    worst = {}
    for g_local, g_spark in zip(local.groupings, on_spark.groupings, strict=True):
        assert [r.group for r in g_spark.groups] == [r.group for r in g_local.groups]
        assert [c.status for c in g_spark.comparisons] == [c.status for c in g_local.comparisons]
        for r_local, r_spark in zip(g_local.groups, g_spark.groups):
            assert (r_spark.n, r_spark.events, r_spark.small) == (r_local.n, r_local.events, r_local.small)
            for m, v in r_local.metrics.items():
                for x, y in ((v.value, r_spark.metrics[m].value), *zip(v.ci, r_spark.metrics[m].ci)):
                    assert (x is None) == (y is None), (g_local.name, r_local.group, m)
                    if x is not None:
                        worst[m] = max(worst.get(m, 0.0), abs(x - y) / max(abs(x), 1e-12))
        for c_local, c_spark in zip(g_local.coverage, g_spark.coverage, strict=True):
            assert c_spark["group"] == c_local["group"] and c_spark["n"] == c_local["n"]
            assert all(c_spark[k] == pytest.approx(v, rel=1e-6) for k, v in c_local.items() if isinstance(v, float))
    assert worst and max(worst.values()) < 1e-9, worst
    with pytest.raises(AuditInputError, match="in-process"):
        audit_on_spark(home, "emergency_admission", 1, cfg.model_copy(update={"mitigation": "group_thresholds"}), None)


def test_spark_daily_snapshot_applies_the_approved_holdout_as_in_process(spark, served_home, tmp_path: Path) -> None:
    """Under an approved 20% holdout the Spark job holds out exactly whom the in-process job does (the same ranks,
    bands and `held_out`), explains none of them, and keeps the same listing record."""
    s = with_holdout(registry_copy(served_home, tmp_path / "home"), 0.2)
    day = default_date(s.warehouse_path)
    local = score_daily(s, day)
    record = listing.read(s, MODEL).sort_values("person_id").reset_index(drop=True)
    on_spark = score_daily(s, day, engine="spark")
    assert on_spark["holdout"] == local["holdout"] and local["holdout"]["held_out"] > 0
    assert on_spark["band_counts"] == local["band_counts"]
    a, b = _snapshot(local), _snapshot(on_spark)
    for col in ("person_id", "rank", "band", "held_out"):
        assert a[col].astype(str).tolist() == b[col].astype(str).tolist(), col
    held = b.held_out.to_numpy()
    assert (b.band[held] == "routine").all() and b.reasons[held].isna().all()
    assert (held_out(b.person_id[held].to_numpy(), MODEL, 0.2)).all()
    shown = (b.band != "routine").to_numpy()
    assert sorted(b["rank"][shown]) == list(range(1, int(shown.sum()) + 1))
    assert sorted(b["rank"][held]) == list(range(int(shown.sum()) + 1, int(shown.sum() + held.sum()) + 1))
    after = listing.read(s, MODEL).sort_values("person_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(after, record)  # the same day's listed and held-out: nothing new
    assert set(after.person_id[after.held_out]) == set(b.person_id[held])
