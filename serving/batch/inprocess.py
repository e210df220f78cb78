"""The daily scoring job in-process (DuckDB): features as at a date for the whole eligible population,
scores by the `champion` model, ranks and bands, reasons for everyone in a worklist band, flare-up risk for
monitored COPD/asthma patients (when a flare-up champion exists), the trend against the scores of a week
before, and the snapshot published atomically."""

from __future__ import annotations

import json
import time
from datetime import date

import numpy as np
import pandas as pd

from features.build import BuildConfig, build
from features.series import practice_pcns
from features.sources.codes import CONDITION_KEYS
from models.explain import reasons
from phm.core.settings import Settings
from phm.core.timing import Stages
from serving.batch.common import SnapshotError, default_date
from serving.batch.ranking import bands, condition_lists
from serving.batch.store import earlier, snapshot_meta, write_snapshot
from training import tracking
from training.registry import load_champion


def score_daily_inprocess(settings: Settings, day: date | None = None, progress=None,
                          publish: bool | None = None) -> dict:
    """Score everyone eligible on `day` in this process (features on DuckDB) and publish the snapshot."""
    say = progress or (lambda _m: None)
    if not settings.warehouse_path.exists():
        raise SnapshotError(f"{settings.warehouse_path}: no warehouse; run `phm data load` first")
    tracking.configure(settings)
    champion = load_champion("emergency_admission")
    if champion is None:
        raise SnapshotError("no emergency_admission champion: audit, approve and `phm models promote` a version first")
    day = day or default_date(settings.warehouse_path)
    started = time.perf_counter()
    stages = Stages()
    work = settings.features_dir / "daily"
    say(f"building features as at {day}")
    feat_path = work / f"emergency_admission_{day}.parquet"
    manifest = build(settings.warehouse_path, BuildConfig(feature_set="emergency_admission", index_dates=[day]), feat_path)
    features = pd.read_parquet(feat_path)
    stages.done("features")
    predictors = list(champion.model.feature_names_in_)
    say(f"scoring {len(features):,} people with emergency_admission version {champion.version}")
    X = features[predictors].astype("float64")
    risk = champion.model.risk_from_values(X.to_numpy())
    stages.done("scoring")
    rank, band = bands(risk)
    practices = practice_pcns(settings.warehouse_path)
    conditions = [c for c in (f"ltc_{k}" for k in CONDITION_KEYS) if c in features]
    scores = pd.DataFrame({
        "person_id": features["person_id"].to_numpy(), "practice_code": features["practice_code"].astype(str).to_numpy(),
        "age_band": features["age_band"].astype(str).to_numpy(), "sex": features["sex"].astype(str).to_numpy(),
        "segment": features["segment"].astype(str).to_numpy(),
        "conditions": condition_lists(features, conditions),
        "risk": risk, "rank": rank, "band": band})
    scores["pcn_code"] = scores.practice_code.map(practices).fillna("")
    stages.done("bands")
    shown = scores.band != "routine"
    say(f"explaining the {int(shown.sum()):,} people in worklist bands")
    scores["reasons"] = None
    if shown.any():
        scores.loc[shown, "reasons"] = [json.dumps(r) for r in reasons(champion.model, X[shown.to_numpy()])]
    stages.done("reasons")
    scores["flare_risk"] = np.nan
    flare = load_champion("flare_up")
    flare_info = None
    if flare is not None:
        say("scoring flare-up risk for monitored COPD/asthma patients")
        fpath = work / f"flare_up_{day}.parquet"
        build(settings.warehouse_path, BuildConfig(feature_set="flare_up", index_dates=[day]), fpath)
        ff = pd.read_parquet(fpath)
        if len(ff):
            fr = flare.model.predict_proba(ff[list(flare.model.feature_names_in_)].astype("float64"))[:, 1]
            scores["flare_risk"] = scores.person_id.map(pd.Series(fr, index=ff.person_id.to_numpy()))
        flare_info = {"version": flare.version, "people": int(len(ff))}
    stages.done("flare_up")
    previous = earlier(settings, day)
    if previous is not None:  # trend: the scores of a week before (or the latest earlier ones)
        scores["previous_risk"] = scores.person_id.map(previous[1].set_index("person_id").risk)
    stages.done("trend")
    meta = snapshot_meta(day, len(scores), champion, manifest["definition_hash"], flare_info,
                         scores.band.value_counts().to_dict(), previous[0]["date"] if previous else None, "duckdb")
    say("writing the snapshot")
    folder = write_snapshot(settings, scores, X.assign(person_id=scores.person_id.to_numpy()), meta, publish)
    stages.done("write")
    meta["folder"] = str(folder)
    meta["seconds"] = round(time.perf_counter() - started, 1)
    meta["stages"] = stages.rows
    return meta
