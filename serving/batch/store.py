"""The snapshot store: immutable dated snapshot folders beside the warehouse and the pointer that names
the current one.

Readers follow a pointer file (`CURRENT.json`) that is replaced atomically only once a folder is complete,
so a crash or kill part-way leaves the previous snapshot intact and served (DuckDB allows one writer per
file; immutable Parquet snapshots let the service read while the job writes). Both daily jobs (in-process
and Spark) publish through `publish_snapshot`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd

from phm.core.settings import Settings
from serving.batch.ranking import BANDS
from training.registry import Champion

POINTER = "CURRENT.json"
KEEP = 14  # dated snapshots kept
TREND_DAYS = 7  # the worklist's trend compares with the scores of a week before
FAULT_PAUSE = "PHM_FAULT_PAUSE_MID_WRITE"  # seconds to pause mid-write (fault-injection tests only)


def snapshots_root(settings: Settings) -> Path:
    return settings.warehouse_path.parent / "snapshots"


def snapshot_meta(day: date, people: int, champion: Champion, feature_hash: str, columns: dict[str, dict],
                  band_counts: dict, previous: str | None, engine: str, approval: dict | None = None,
                  bands: dict[str, float] | None = None, refused: dict[str, str] | None = None) -> dict:
    """The snapshot's manifest: what produced it (the worklist model and the models whose risk sits beside it, with
    versions, feature definitions and the approved configuration each scored under; the engine), its bands, and
    the models that were refused (their column left empty)."""
    models = {champion.name: {"role": "worklist", "version": champion.version, "feature_hash": feature_hash,
                              "registered_feature_hash": champion.feature_hash, "people": int(people),
                              **(approval or {})}}
    models.update({name: {"role": "column", **info} for name, info in columns.items()})
    return {"date": str(day), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "people": int(people), "engine": engine, "worklist_model": champion.name, "models": models,
            "bands": dict(bands) if bands else {n: s for n, s in BANDS},
            "band_counts": {str(k): int(v) for k, v in band_counts.items()},
            "previous": previous, "refused": dict(refused or {})}


def worklist_version(meta: dict) -> str:
    """The version of the model that ranked a snapshot's worklist."""
    return meta["models"][meta["worklist_model"]]["version"]


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
