"""The incremental refresh: after events arrive, the features and scores of only the people they concern are
recomputed by the same feature definitions and approved champion as the daily job, at the delta's index date (the
day after the latest event's admission, discharge or arrival date, never before the snapshot's:
`features.events.fold.index_date`), and published as a small delta beside the snapshot.

The delta holds the changed people's score rows (risk, conditions, segment, other models' risks, reasons, a flag
such as "discharged today after an emergency admission") and their features; readers lay it over the snapshot
and re-rank everyone (`serving.batch.delta_apply`), so ranks and bands are those of a full refresh. Reasons are
computed here for everyone whose row changed and for everyone the re-ranking moves into a worklist band (from the
snapshot's stored features); people moved out of the bands lose theirs, as in the daily job.

The approved random holdout applies as in the daily job (`serving.batch.ranking.hold_out`): among everyone the
re-ranking lists, those in the model's holdout draw and never shown before are moved to `routine` below the
listed, and the delta's rows carry the `held_out` flag wherever it changed, so readers withhold the same people
(`serving.batch.delta_apply.lay_over`). Whether a listed person is held out depends on their pseudonym, the model
and the listing record only, never on which people the delta recomputed; the people listed and held out are added
to the listing record (`evaluation.programme.listing`) once the delta is published.

Deltas are cumulative (each covers every stored event for people in the snapshot), written aside and renamed,
then named by the pointer with one atomic replace: readers see the snapshot with the previous delta or the new
one, never part of one. The warehouse is never written: the affected people's rows are copied into a small
DuckDB file with the events' rows laid over them (`features.events.merge`). When the index date is after the
snapshot's (an event on or after the snapshot's day), the delta is laid over the snapshot's *rolled base*:
everyone re-scored at that date (`serving.batch.roll`), so every rank compares scores of one index date and the
result equals a full daily refresh at that date. A daily refresh publishes a pointer without a delta: run
`phm events refresh` after it."""

from __future__ import annotations

import json
from pathlib import Path
import os
import shutil
import time
from datetime import date, datetime, timezone

import numpy as np
import pandas as pd

from evaluation.programme import listing
from features.build import build
from features.events.fold import fold, index_date
from features.events.merge import slice_for
from features.events.store import EventStore, events_root
from features.series import practice_pcns
from features.sources.codes import CONDITION_KEYS, EMERGENCY_ADMISSION_METHODS
from models import specs
from models.explain import reasons
from phm.core.settings import Settings
from phm.core.timing import Stages
from serving.batch.common import SnapshotError, approved_champion, check_features, require_champion
from serving.batch.delta_apply import DELTAS, FLAG, HELD, band_cutoffs, overlay
from serving.batch.delta_base import feature_rows, read_base
from serving.batch.ranking import band_codes, band_names, condition_lists, holdable
from serving.batch.roll import ensure_rolled
from serving.batch.snapshot_files import SUMS, file_sums, sealed
from serving.batch.store import POINTER, pointer_lock, signal_reload, snapshots_root, worklist_version
from serving.governance.configuration import data_source
from training import tracking

KEEP_DELTAS = 3


def flags(rows: dict[str, pd.DataFrame], today: date) -> pd.Series:
    """Each person's most telling event, in words, from the folded event rows (person_id -> text)."""
    apc, ae = rows["apc_spells"], rows["ae_attendances"]
    found: dict[int, tuple[int, str]] = {}

    def note(person: int, weight: int, text: str) -> None:
        if person not in found or weight > found[person][0]:
            found[person] = (weight, text)

    for r in apc.itertuples(index=False):
        emergency = r.admission_method in EMERGENCY_ADMISSION_METHODS
        if r.discharge_date is not None and not pd.isna(r.discharge_date):
            if r.discharge_date == today:
                note(
                    r.person_id,
                    4 if emergency else 3,
                    "discharged today after an emergency admission" if emergency else "discharged today",
                )
        elif emergency:
            note(r.person_id, 2, "in hospital after an emergency admission")
    for r in ae.itertuples(index=False):
        if pd.Timestamp(r.arrival_time).date() == today:
            note(r.person_id, 1, "A&E attendance today")
    return pd.Series({p: t for p, (_w, t) in found.items()}, dtype=object)


def refresh_delta(settings: Settings, today: date | None = None, progress=None) -> dict:
    """Recompute the people the stored events concern and publish the delta; returns its manifest."""
    say = progress or (lambda _m: None)
    started, stages = time.perf_counter(), Stages()
    root = snapshots_root(settings)
    try:
        pointer = json.loads((root / POINTER).read_text())
    except FileNotFoundError:
        raise SnapshotError("no snapshot to refresh: run `phm score daily` first") from None
    folder = root / pointer["folder"]
    meta = json.loads((folder / "manifest.json").read_text())
    if meta.get("engine") != "duckdb":
        raise SnapshotError("deltas are computed over in-process (DuckDB) snapshots only")
    tracking.configure(settings)
    spec, source = specs.worklist(), data_source(settings)
    champion, approved = require_champion(settings, spec, source)
    if str(champion.version) != str(worklist_version(meta)):
        raise SnapshotError(
            f"the champion is version {champion.version} but the snapshot was scored by version "
            f"{worklist_version(meta)}: run the daily job first"
        )
    today = today or datetime.now(timezone.utc).date()
    events = EventStore(events_root(settings)).events()
    rows = fold(events)
    stages.done("events")
    day = index_date(rows, date.fromisoformat(meta["date"]))
    based = ensure_rolled(settings, folder, meta, day, say) if str(day) != meta["date"] else folder
    stages.done("base")
    base = read_base(based)
    ids = events.person_id.unique()
    people = set(ids[base.rows_of(ids) >= 0].tolist())
    say(f"recomputing {len(people):,} people from {len(events):,} events, as at {day}")
    work = settings.features_dir / "delta"
    work.mkdir(parents=True, exist_ok=True)
    predictors = list(champion.model.feature_names_in_)
    changed = base.scores.iloc[0:0].drop(columns=["rank", "band"])
    new_X = pd.DataFrame(columns=["person_id", *predictors])
    if people:
        small = slice_for(settings.warehouse_path, people, rows, work / "slice.duckdb")
        manifest = build(small, spec.build_config([day]), work / "features.parquet")
        check_features(approved, manifest)
        f = pd.read_parquet(work / "features.parquet")
        stages.done("features")
        X = f[predictors].astype("float64")
        conditions = [c for c in (f"ltc_{k}" for k in CONDITION_KEYS) if c in f]
        practices = practice_pcns(small)
        changed = pd.DataFrame(
            {
                "person_id": f["person_id"].to_numpy(),
                "practice_code": f["practice_code"].astype(str).to_numpy(),
                "age_band": f["age_band"].astype(str).to_numpy(),
                "sex": f["sex"].astype(str).to_numpy(),
                "segment": f["segment"].astype(str).to_numpy(),
                "conditions": condition_lists(f, conditions),
                "risk": champion.model.risk_from_values(X.to_numpy()),
            }
        )
        changed["pcn_code"] = changed.practice_code.map(practices).fillna("")
        _other_columns(settings, source, small, day, work, changed, meta)
        new_X = X.assign(person_id=changed.person_id.to_numpy())
        stages.done("scoring")
    # the re-ranking over everyone, on the kept base's arrays; only the rows the delta holds become a frame
    cutoffs = band_cutoffs(meta)
    at = base.rows_of(changed.person_id.to_numpy())
    risk = base.risk.copy()
    risk[at[at >= 0]] = changed.risk.to_numpy(dtype="float64")[at >= 0]
    _rank, code = band_codes(risk, cutoffs)
    names = band_names(cutoffs)
    listed = code != len(names) - 1
    holdout = _holdout(settings, spec.name, base, listed, approved.current.holdout_share, _share(based))
    code[holdout] = len(names) - 1  # the held-out are routine, as in the daily job (`ranking.hold_out`)
    routine = code == len(names) - 1
    touched = np.zeros(risk.size, dtype=bool)
    touched[base.rows_of(np.fromiter(people, dtype=np.int64, count=len(people)))] = True  # even if not rebuilt
    moved = (code != base.band_code(names)) | (holdout != base.held)
    explain = ~routine & (touched | base.routine)
    kept = np.flatnonzero(touched | moved | explain)
    merged = overlay(base.scores.iloc[kept].reset_index(drop=True), changed)
    merged[HELD] = holdout[kept]
    touched, moved, explain, routine = touched[kept], moved[kept], explain[kept], routine[kept]
    merged["reasons"] = merged["reasons"].astype(object)
    merged.loc[routine & (touched | moved), "reasons"] = None
    if explain.any():
        ids = merged.person_id.to_numpy()[explain]
        stored = feature_rows(base, ids[~np.isin(ids, new_X.person_id.to_numpy(dtype=np.int64))], predictors)
        values = pd.concat([stored, new_X]) if len(stored) and len(new_X) else stored if len(stored) else new_X
        values = values.set_index("person_id")
        merged.loc[explain, "reasons"] = [json.dumps(r) for r in reasons(champion.model, values.loc[ids, predictors])]
    stages.done("reasons")
    flag = flags(rows, today)
    merged[FLAG] = merged.person_id.map(flag).where(merged.person_id.isin(flag.index), None) if len(flag) else None
    out = merged.drop(columns=["rank", "band"])
    info = {
        "snapshot": folder.name,
        "date": meta["date"],
        "index_date": str(day),
        "base": str(based.relative_to(folder)) if based != folder else None,
        "created": datetime.now(timezone.utc).isoformat(),
        "events": int(len(events)),
        "people": int(len(people)),
        "rows": int(len(out)),
        "held_out": int(holdout.sum()),
        "last_event_received": str(events.received.max()) if len(events) else None,
    }
    name = _publish(settings.home, root, folder, pointer, out, new_X, info)
    # whom the published scores list and hold out joins the listing record, so monitoring and safe retraining know
    # whom the programme may have reached (each person's first day is kept). Only once published: nobody is recorded
    # as shown by a delta never seen; meanwhile the service withholds the delta's held-out from its `held_out` column
    share = approved.current.holdout_share
    listing.record(settings, spec.name, day, base.where.to_numpy()[listed], holdout[listed], share)
    stages.done("write")
    signal_reload(settings)
    return {**info, "delta": name, "seconds": round(time.perf_counter() - started, 2), "stages": stages.rows}


def _holdout(settings: Settings, model: str, base, listed: np.ndarray, share: float, base_share: float) -> np.ndarray:
    """Who of everyone re-ranked the approved holdout keeps back, exactly as the daily job would at the delta's
    index date: the `listed` who are `holdable` (a draw per person and model, and the listing record: never which
    people the delta recomputed). Under the share the base was scored with, the base already tells the draw of
    everyone it listed (held out: in the draw; shown: out of it, or shown before, which stays so): only the people
    newly listed are drawn (a hash each), and the base's held-out are checked against the record again."""
    held = np.zeros(listed.size, bool)
    if not share:
        return held
    ids, shown = base.where.to_numpy(), listing.shown(settings, model)
    if share == base_share:
        known = listed & (~base.routine | base.held)
        was = np.flatnonzero(known & base.held)
        held[was] = ~np.isin(ids[was], shown)
        listed = listed & ~known
    cand = np.flatnonzero(listed)
    held[cand[holdable(settings, model, ids[cand], share, shown)]] = True
    return held


def _share(folder) -> float:
    """The holdout share the base in `folder` was scored with (0: none)."""
    meta = json.loads((folder / "manifest.json").read_text())
    return float((meta.get("holdout") or {}).get("share", 0.0))


def _other_columns(settings, source, small, day, work, changed: pd.DataFrame, meta: dict) -> None:
    """The risks shown beside the worklist's, for the changed people, by the champions the snapshot used."""
    for other in specs.columns():
        changed[other.daily.column] = np.nan
        used = meta["models"].get(other.name)
        if not used or "version" not in used:
            continue
        found, case, refusal = approved_champion(settings, other, source)
        if refusal or found is None or str(found.version) != str(used["version"]):
            raise SnapshotError(f"{other.name}: the champion changed since the snapshot: run the daily job first")
        path = work / f"{other.name}.parquet"
        check_features(case, build(small, other.build_config([day]), path))
        frame = pd.read_parquet(path)
        if len(frame):
            value = found.model.predict_proba(frame[list(found.model.feature_names_in_)].astype("float64"))[:, 1]
            changed[other.daily.column] = changed.person_id.map(pd.Series(value, index=frame.person_id.to_numpy()))


def _publish(home: Path, root, folder, pointer: dict, rows: pd.DataFrame, features: pd.DataFrame, info: dict) -> str:
    """Write the delta aside, rename it into place, then swap the pointer (if it still names this snapshot)."""
    deltas = folder / DELTAS
    deltas.mkdir(exist_ok=True)
    name = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}"
    partial = deltas / f".{name}.partial"
    partial.mkdir()
    try:
        rows.to_parquet(partial / "scores.parquet", index=False)
        features.to_parquet(partial / "features.parquet", index=False)
        info[SUMS] = file_sums(partial)  # checked whenever the live snapshot is read with it
        (partial / "manifest.json").write_text(sealed(home, info))
        for f in partial.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        partial.rename(deltas / name)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    with pointer_lock(root):  # a daily job cannot publish between this check and the swap
        if json.loads((root / POINTER).read_text())["folder"] != folder.name:
            raise SnapshotError("a new snapshot was published meanwhile: refresh again over it")
        tmp = root / (POINTER + ".delta.tmp")
        tmp.write_text(json.dumps({**pointer, "delta": name}))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, root / POINTER)
    for old in sorted(p for p in deltas.iterdir() if not p.name.startswith("."))[:-KEEP_DELTAS]:
        shutil.rmtree(old, ignore_errors=True)
    return name
