"""The daily scoring job in-process (DuckDB): features as at a date for the whole eligible population, scores by
the worklist model's `champion`, ranks and bands, reasons for everyone in a worklist band, the risks of the
models shown beside it (e.g. flare-up risk for monitored COPD/asthma patients, when that model has a champion),
the trend against the scores of a week before, and the snapshot published atomically. Which models play which
part comes from their specifications (`models.specs`).

A champion scores only under the configuration a safety officer approved (`serving.batch.common`): the worklist
model's refusal stops the job (yesterday's snapshot stays), another model's leaves its column empty and is
recorded in the manifest; the features built are checked against the approved feature hash before scoring, and
the bands are the approved cut-offs. The approved random holdout (`holdout_share`) moves people the model would
list to `routine` (never listed, explained or exported; the `held_out` column says who) and every day's listed and
held-out people are kept in the listing record (`evaluation.programme.listing`) for monitoring and safe retraining."""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.programme import listing
from features.build import EmptyCohortError, build
from features.engine.duckdb_engine import DuckDBEngine
from features.series import practice_pcns
from features.sources.codes import CONDITION_KEYS
from models.explain import reasons
from models import specs
from phm.core.settings import Settings
from phm.core.timing import Stages
from serving.batch.common import (
    SnapshotError,
    approval_record,
    approved_champion,
    check_day,
    check_features,
    default_date,
    require_champion,
)
from serving.batch.ranking import Listed, bands, condition_lists, hold_out
from serving.batch.store import earlier, snapshot_meta, write_snapshot
from serving.governance.configuration import data_source
from training import tracking


def score_daily_inprocess(
    settings: Settings, day: date | None = None, progress=None, publish: bool | None = None
) -> dict:
    """Score everyone eligible on `day` in this process (features on DuckDB) and publish the snapshot."""
    say = progress or (lambda _m: None)
    if not settings.warehouse_path.exists():
        raise SnapshotError(f"{settings.warehouse_path}: no warehouse; run `phm data load` first")
    started = time.perf_counter()
    day = day or default_date(settings.warehouse_path)
    with DuckDBEngine(settings.warehouse_path) as engine:
        check_day(engine, day, specs.worklist())
    scores, X, meta, stages, today = score_population(settings, day, say, settings.features_dir / "daily")
    say("writing the snapshot")
    folder = write_snapshot(settings, scores, X.assign(person_id=scores.person_id.to_numpy()), meta, publish)
    stages.done("write")
    if meta["published"]:  # only a snapshot coordinators are served lists anyone (a past day kept aside does not)
        listing.record(settings, today.model, day, today.person_id, today.held, today.share)
    meta["folder"] = str(folder)
    meta["seconds"] = round(time.perf_counter() - started, 1)
    meta["stages"] = stages.rows
    return meta


def score_population(
    settings: Settings, day: date, say, work: Path
) -> tuple[pd.DataFrame, pd.DataFrame, dict, Stages, Listed]:
    """Everyone eligible on `day`, scored as the daily job scores them: (scores, predictors, manifest, stages, who
    was listed and held out; the daily job adds that to the listing record once its snapshot is published).
    Also the whole-population base of an incremental refresh at a later index date (`serving.batch.roll`)."""
    tracking.configure(settings)
    spec = specs.worklist()
    source = data_source(settings)
    champion, approved = require_champion(settings, spec, source)
    stages = Stages()
    say(f"building features as at {day}")
    feat_path = work / f"{spec.name}_{day}.parquet"
    manifest = build(settings.warehouse_path, spec.build_config([day]), feat_path)
    check_features(approved, manifest)
    features = pd.read_parquet(feat_path)
    stages.done("features")
    predictors = list(champion.model.feature_names_in_)
    say(f"scoring {len(features):,} people with {spec.name} version {champion.version}")
    X = features[predictors].astype("float64")
    risk = champion.model.risk_from_values(X.to_numpy())
    stages.done("scoring")
    rank, band = bands(risk, list(approved.current.bands.items()))
    listed, held = hold_out(
        settings, spec.name, features["person_id"].to_numpy(), band, approved.current.holdout_share, rank
    )
    practices = practice_pcns(settings.warehouse_path)
    conditions = [c for c in (f"ltc_{k}" for k in CONDITION_KEYS) if c in features]
    scores = pd.DataFrame(
        {
            "person_id": features["person_id"].to_numpy(),
            "practice_code": features["practice_code"].astype(str).to_numpy(),
            "age_band": features["age_band"].astype(str).to_numpy(),
            "sex": features["sex"].astype(str).to_numpy(),
            "segment": features["segment"].astype(str).to_numpy(),
            "conditions": condition_lists(features, conditions),
            "risk": risk,
            "rank": rank,
            "band": band,
            "held_out": held,  # in the approved random holdout: would be listed, moved to routine
        }
    )
    scores["pcn_code"] = scores.practice_code.map(practices).fillna("")
    stages.done("bands")
    shown = scores.band != "routine"
    say(f"explaining the {int(shown.sum()):,} people in worklist bands")
    scores["reasons"] = None
    if shown.any():
        scores.loc[shown, "reasons"] = [json.dumps(r) for r in reasons(champion.model, X[shown.to_numpy()])]
    stages.done("reasons")
    columns, refused = {}, {}
    for other in specs.columns():  # risks shown beside the worklist's (e.g. a flare-up warning)
        scores[other.daily.column] = np.nan
        found, case, refusal = approved_champion(settings, other, source)
        if refusal:
            say(f"not scoring {other.title.lower()}: {refusal}")
            refused[other.name] = refusal
        elif found is not None:
            say(f"scoring {other.title.lower()}")
            path = work / f"{other.name}_{day}.parquet"
            try:
                check_features(case, build(settings.warehouse_path, other.build_config([day]), path))
                frame = pd.read_parquet(path)
            except EmptyCohortError as exc:  # nobody it applies to today: an empty column, not a failed job
                say(f"{other.title.lower()}: {exc}")
                frame = pd.DataFrame()
            if len(frame):
                value = found.model.predict_proba(frame[list(found.model.feature_names_in_)].astype("float64"))[:, 1]
                scores[other.daily.column] = scores.person_id.map(pd.Series(value, index=frame.person_id.to_numpy()))
            columns[other.name] = {
                "version": found.version,
                "people": int(len(frame)),
                "column": other.daily.column,
                **approval_record(case),
            }
        stages.done(other.name)
    # trend: the scores of a week before (or the latest earlier ones) by this model version; none at first
    previous = earlier(settings, day, scored_by=(champion.name, champion.version))
    scores["previous_risk"] = (
        scores.person_id.map(previous[1].set_index("person_id").risk).astype("float64")
        if previous is not None
        else np.nan
    )
    stages.done("trend")
    meta = snapshot_meta(
        day,
        len(scores),
        champion,
        manifest["definition_hash"],
        columns,
        scores.band.value_counts().to_dict(),
        previous[0]["date"] if previous else None,
        "duckdb",
        approval_record(approved),
        approved.current.bands,
        refused,
    )
    if approved.current.holdout_share:
        meta["holdout"] = {"share": approved.current.holdout_share, "held_out": int(held.sum())}
    today = Listed(spec.name, scores.person_id.to_numpy()[listed], held[listed], approved.current.holdout_share)
    return scores, X, meta, stages, today
