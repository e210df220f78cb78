"""The daily refresh, however it is optimised, gives exactly the scores and reasons of the straightforward
computation below (the job as first written: pandas, LightGBM's DataFrame contributions, a loop per person),
on a 20,000-person ICS, for two consecutive days (the second reuses what it can from the first)."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from support.homes import registry_copy

from models import specs

from features.build import build
from features.sources.codes import CONDITION_KEYS
from models.explain import phrase
from phm.core.settings import Settings
from serving.batch.common import default_date
from serving.batch.daily import score_daily
from serving.batch.ranking import BANDS
from training.registry import load_champion
from training import tracking


@pytest.fixture(scope="module")
def home(served_home, tmp_path_factory) -> Settings:
    settings = registry_copy(served_home, tmp_path_factory.mktemp("refresh_home"))
    tracking.configure(settings)
    return settings


def reference(home: Settings, day, out: Path) -> pd.DataFrame:
    """Scores, ranks, bands, conditions and reasons computed the plain way, one person at a time."""
    build(home.warehouse_path, specs.get("emergency_admission").build_config([day]), out)
    f = pd.read_parquet(out)
    model = load_champion("emergency_admission").model
    names = list(model.feature_names_in_)
    X = f[names].astype("float64")
    risk = model.predict_proba(X)[:, 1]
    order = sorted(range(len(f)), key=lambda i: (-risk[i], i))
    rank = np.empty(len(f), dtype=int)
    for position, i in enumerate(order, start=1):
        rank[i] = position
    cut = {name: max(1, math.ceil(share * len(f))) for name, share in BANDS}
    band = [
        "very high"
        if r <= cut["very high"]
        else "high"
        if r <= cut["high"]
        else "raised"
        if r <= cut["raised"]
        else "routine"
        for r in rank
    ]
    con = duckdb.connect(str(home.warehouse_path), read_only=True)
    pcn = dict(con.execute("SELECT practice_code, pcn_code FROM practices").fetchall())
    con.close()
    rows = []
    shown = [i for i in range(len(f)) if band[i] != "routine"]
    contrib = model.contributions(X.iloc[shown])
    why = {}
    for i, (_, c) in zip(shown, contrib.iterrows()):
        ranked = sorted(((c[n], j, n) for j, n in enumerate(names)), key=lambda t: (-t[0], t[1]))[:3]
        items = []
        for value, j, n in ranked:
            if value <= 0:
                break
            v = X.iloc[i, j]
            items.append(
                {
                    "feature": n,
                    "value": None if np.isnan(v) else float(v),
                    "words": phrase(n, float(v)),
                    "log_odds": round(float(value), 4),
                }
            )
        why[i] = json.dumps(items)
    for i in range(len(f)):
        row = f.iloc[i]
        rows.append(
            {
                "person_id": int(row.person_id),
                "practice_code": row.practice_code,
                "pcn_code": pcn.get(row.practice_code, ""),
                "segment": row.segment,
                "conditions": ",".join(k for k in CONDITION_KEYS if row[f"ltc_{k}"] > 0),
                "risk": float(risk[i]),
                "rank": int(rank[i]),
                "band": band[i],
                "reasons": why.get(i),
            }
        )
    return pd.DataFrame(rows).set_index("person_id")


def test_the_refresh_equals_the_straightforward_computation_on_consecutive_days(home, tmp_path) -> None:
    today = default_date(home.warehouse_path)
    risks = []
    for day in (today - timedelta(days=1), today):
        meta = score_daily(home, day)
        snap = pd.read_parquet(Path(meta["folder"]) / "scores.parquet").set_index("person_id")
        ref = reference(home, day, tmp_path / f"ref_{day}.parquet")
        assert len(snap) == len(ref) > 10_000 and set(snap.index) == set(ref.index)
        snap = snap.loc[ref.index]
        assert np.array_equal(snap.risk.to_numpy(), ref.risk.to_numpy())  # bit for bit
        for col in ("practice_code", "pcn_code", "segment", "conditions", "rank", "band"):
            assert snap[col].tolist() == ref[col].tolist(), col
        assert snap.reasons.tolist() == ref.reasons.tolist()
        assert set(meta["stages"]) >= {"features", "scoring", "bands", "reasons", "write"}
        risks.append(snap)
    # the second day's trend is the first day's risk (the served home's snapshots were not copied)
    yesterday, now = risks
    assert np.array_equal(now.previous_risk.to_numpy(), yesterday.risk.reindex(now.index).to_numpy(), equal_nan=True)
