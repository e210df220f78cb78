"""The daily scoring job and its snapshots.

`score_daily` builds the emergency-admission features as at a date for the whole eligible population,
scores them with the `champion` model, ranks people into bands, explains the risk of everyone in a
worklist band, adds flare-up risk for monitored COPD/asthma patients (when a flare-up champion
exists), and writes an immutable dated snapshot folder beside the warehouse. Readers follow a
pointer file (`CURRENT.json`) that is replaced atomically only once the folder is complete, so a
crash or kill part-way leaves the previous snapshot intact and served (DuckDB allows one writer per
file; immutable Parquet snapshots let the service read while the job writes).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from features.build import BuildConfig, build
from features.codes import CONDITION_KEYS
from features.series import data_end, practice_pcns
from models.explain import reasons
from phm.settings import Settings
from phm.timing import Stages
from training import tracking

BANDS = [("very high", 0.005), ("high", 0.02), ("raised", 0.05)]  # top shares, highest first
BAND_ORDER = {"very high": 3, "high": 2, "raised": 1, "routine": 0}
POINTER = "CURRENT.json"
KEEP = 14  # dated snapshots kept
TREND_DAYS = 7  # the worklist's trend compares with the scores of a week before
FAULT_PAUSE = "PHM_FAULT_PAUSE_MID_WRITE"  # seconds to pause mid-write (fault-injection tests only)


class SnapshotError(RuntimeError):
    """No snapshot can be produced or read (no champion model, no warehouse, ...)."""


def snapshots_root(settings: Settings) -> Path:
    return settings.warehouse_path.parent / "snapshots"


@dataclass
class Champion:
    name: str
    version: str
    model: object  # GradientBoostedRisk
    pyfunc: object
    feature_hash: str | None


def load_champion(name: str) -> Champion | None:
    try:
        mv = MlflowClient().get_model_version_by_alias(name, "champion")
    except MlflowException:
        return None
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    return Champion(name, str(mv.version), pyfunc.unwrap_python_model().model, pyfunc,
                    (mv.tags or {}).get("feature_hash"))


def default_date(warehouse: Path) -> date:
    """The day after the data ends."""
    return data_end(warehouse) + timedelta(days=1)


def bands(risk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank (1 = highest risk) and band for each person."""
    order = np.argsort(-risk, kind="stable")
    rank = np.empty(risk.size, dtype=np.int64)
    rank[order] = np.arange(1, risk.size + 1)
    band = np.full(risk.size, "routine", dtype=object)
    for name, share in reversed(BANDS):
        band[rank <= max(1, int(np.ceil(share * risk.size)))] = name
    return rank, band


def score_daily(settings: Settings, day: date | None = None, progress=None, engine: str | None = None) -> dict:
    """Score everyone eligible on `day` and publish the snapshot; on Spark when `engine` (or the `engine`
    setting) says so (`serving.spark_daily`), in-process on DuckDB otherwise."""
    if (engine or settings.engine) == "spark":
        from serving.spark_daily import score_daily_spark

        return score_daily_spark(settings, day, progress)
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
    folder = write_snapshot(settings, scores, X.assign(person_id=scores.person_id.to_numpy()), meta)
    stages.done("write")
    meta["folder"] = str(folder)
    meta["seconds"] = round(time.perf_counter() - started, 1)
    meta["stages"] = stages.rows
    return meta


def condition_lists(features: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Each person's long-term conditions as "copd,diabetes" text (catalogue order): one string per distinct
    combination, not per person."""
    coded = features[columns].fillna(0).to_numpy() > 0
    combos, which = np.unique(coded @ (1 << np.arange(len(columns), dtype=np.int64)), return_inverse=True)
    names = [c.removeprefix("ltc_") for c in columns]
    text = np.array([",".join(n for j, n in enumerate(names) if combo >> j & 1) for combo in combos], dtype=object)
    return text[which]


def snapshot_meta(day: date, people: int, champion: Champion, feature_hash: str, flare_info: dict | None,
                  band_counts: dict, previous: str | None, engine: str) -> dict:
    """The snapshot's manifest: what produced it (model versions, feature definitions, engine) and its bands."""
    return {"date": str(day), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "people": int(people), "engine": engine,
            "emergency_admission": {"version": champion.version, "feature_hash": feature_hash,
                                    "registered_feature_hash": champion.feature_hash},
            "flare_up": flare_info, "bands": {n: s for n, s in BANDS},
            "band_counts": {str(k): int(v) for k, v in band_counts.items()}, "previous": previous}


def write_snapshot(settings: Settings, scores: pd.DataFrame, features: pd.DataFrame, meta: dict) -> Path:
    """Write a complete snapshot folder, then swap the pointer to it atomically."""
    def write(partial: Path) -> None:
        scores.to_parquet(partial / "scores.parquet", index=False)
        pause_mid_write()
        features.to_parquet(partial / "features.parquet", index=False)

    return publish_snapshot(settings, meta, write)


def pause_mid_write() -> None:
    """Fault injection for tests: pause between the two tables of a snapshot."""
    pause = float(os.environ.get(FAULT_PAUSE, "0") or 0)
    if pause:
        time.sleep(pause)


def publish_snapshot(settings: Settings, meta: dict, write) -> Path:
    """`write(partial_folder)` writes the tables; then the manifest, an fsync of every file, the rename of the
    folder and, last, the atomic swap of the pointer. Until that swap readers see the previous snapshot."""
    root = snapshots_root(settings)
    root.mkdir(parents=True, exist_ok=True)
    folder = root / f"{meta['date']}_{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}"
    partial = folder.with_name(folder.name + ".partial")
    partial.mkdir()
    write(partial)
    (partial / "manifest.json").write_text(json.dumps(meta, indent=1))
    for f in partial.rglob("*"):  # durable before the pointer moves (Spark writes folders of parts)
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    partial.rename(folder)
    tmp = root / (POINTER + ".tmp")
    tmp.write_text(json.dumps({"folder": folder.name, "date": meta["date"]}))
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, root / POINTER)
    _prune(root, folder)
    return folder


def _prune(root: Path, keep: Path) -> None:
    done = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.endswith(".partial"))
    for old in done[:-KEEP]:
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob("*.partial"):
        if time.time() - stale.stat().st_mtime > 3600:
            shutil.rmtree(stale, ignore_errors=True)


def _done(root: Path) -> list[tuple[date, str, Path]]:
    out = []
    for folder in (root.iterdir() if root.exists() else []):
        if folder.is_dir() and not folder.name.endswith(".partial") and (folder / "manifest.json").exists():
            try:
                out.append((date.fromisoformat(folder.name[:10]), folder.name, folder))
            except ValueError:
                continue
    return sorted(out)


def earlier_folder(settings: Settings, day: date, days_back: int = TREND_DAYS) -> Path | None:
    """The snapshot to compare `day` with: the latest dated at least `days_back` days earlier; else the latest
    dated before `day`; else the current one (a re-score of the same day)."""
    done = _done(snapshots_root(settings))
    week = [d for d in done if d[0] <= day - timedelta(days=days_back)]
    before = [d for d in done if d[0] < day]
    if week or before:
        return (week or before)[-1][2]
    return current_folder(settings)


def earlier(settings: Settings, day: date, days_back: int = TREND_DAYS) -> tuple[dict, pd.DataFrame] | None:
    """`earlier_folder`'s manifest and (person_id, risk)."""
    folder = earlier_folder(settings, day, days_back)
    if folder is None:
        return None
    meta = json.loads((folder / "manifest.json").read_text())
    meta["snapshot_folder"] = folder.name
    return meta, pd.read_parquet(folder / "scores.parquet", columns=["person_id", "risk"])


def current_folder(settings: Settings) -> Path | None:
    """The folder the pointer names, or None when there is no snapshot yet."""
    root = snapshots_root(settings)
    pointer = root / POINTER
    if not pointer.exists():
        return None
    return root / json.loads(pointer.read_text())["folder"]


def current(settings: Settings) -> tuple[dict, pd.DataFrame] | None:
    """The snapshot the pointer names: (manifest, scores), or None when there is none yet. A snapshot written
    by Spark is a folder partitioned by practice: read the same way, with practice codes as text."""
    folder = current_folder(settings)
    if folder is None:
        return None
    meta = json.loads((folder / "manifest.json").read_text())
    meta["snapshot_folder"] = folder.name
    scores = pd.read_parquet(folder / "scores.parquet")
    if isinstance(scores["practice_code"].dtype, pd.CategoricalDtype):
        scores["practice_code"] = scores["practice_code"].astype(str)
    return meta, scores
