"""Absorbing the stored events into the warehouse (`phm events absorb`, run with or instead of the next full load):
the warehouse is replaced by a copy with the events' rows laid over it (`features.events.merge.absorb`: written
aside, then renamed over the old file in one step, so a reader has the old file or the new one), the daily job
scores the absorbed warehouse at the events' index date and publishes its snapshot, and only then are the
absorbed events pruned from the store.

Pruning keeps what later events or the worklist still need: every event of an encounter still open (a later
discharge or update of it is folded with its admission), and of an encounter touched on the day before the new
snapshot's index date (its flag, such as "discharged today", stays on the worklist through the delta). The ids of
the pruned messages are kept (`absorbed/`), so a resent message is still a duplicate. Batches ingested while this
runs are not touched."""

from __future__ import annotations

import json
import time
from datetime import date, timedelta

import pandas as pd

from features.events.fold import fold, index_date
from features.events.merge import absorb
from features.events.store import EventStore, events_root
from phm.core.settings import Settings
from phm.core.writer_lock import WriterBusy, sole_writer
from serving.batch.common import SnapshotError, default_date
from serving.batch.daily import score_daily
from serving.batch.delta import refresh_delta
from serving.batch.store import POINTER, snapshots_root


def absorb_events(settings: Settings, progress=None) -> dict:
    """Absorb, re-score, prune, and lay the remaining events over the new snapshot; returns what it did. One
    writer of the warehouse at a time: a load or another absorb at work refuses this one (SnapshotError)."""
    say = progress or (lambda _m: None)
    started = time.perf_counter()
    if not settings.warehouse_path.exists():
        raise SnapshotError(f"{settings.warehouse_path}: no warehouse to absorb events into; run `phm data load`")
    try:
        with sole_writer(settings.warehouse_path, "a `phm events absorb`"):
            return _absorb(settings, say, started)
    except WriterBusy as exc:
        raise SnapshotError(str(exc)) from exc


def _absorb(settings: Settings, say, started: float) -> dict:
    store = EventStore(events_root(settings))
    with store.locked(shared=True):
        files = store.batches()
        events = store.events_in(files)
    if not len(events):
        return {"events": 0, "pruned": 0, "kept": 0, "snapshot": None, "seconds": 0.0}
    rows = fold(events)
    say(f"absorbing {len(events):,} events into {settings.warehouse_path}")
    absorb(settings.warehouse_path, rows, settings.warehouse_path)
    pointer = snapshots_root(settings) / POINTER
    live = date.fromisoformat(json.loads(pointer.read_text())["date"]) if pointer.exists() else None
    day = index_date(rows, max(live or date.min, default_date(settings.warehouse_path)))
    say(f"scoring the absorbed warehouse as at {day}")
    snapshot = score_daily(settings, day, progress=say)
    keep = _still_needed(events, rows, day)
    store.prune(files, events[keep], events.message_id[~keep])
    out = {
        "events": int(len(events)),
        "pruned": int((~keep).sum()),
        "kept": int(keep.sum()),
        "snapshot": snapshot["date"],
        "published": bool(snapshot.get("published", True)),
    }
    if keep.any() and out["published"]:
        try:
            out["delta"] = refresh_delta(settings, progress=say)["delta"]
        except SnapshotError as exc:  # e.g. a Spark snapshot: the kept events wait for the next daily job
            out["delta_refused"] = str(exc)
    out["seconds"] = round(time.perf_counter() - started, 2)
    return out


def _still_needed(events: pd.DataFrame, rows: dict[str, pd.DataFrame], day: date) -> pd.Series:
    """Events of encounters still open, or touched on the day before `day` (see the module's docstring)."""
    open_apc = rows["apc_spells"].spell_id[rows["apc_spells"].discharge_date.isna()]
    open_ae = rows["ae_attendances"].attendance_id[rows["ae_attendances"].departure_time.isna()]
    still_open = ((events.setting == "inpatient") & events.encounter_id.isin(open_apc)) | (
        (events.setting == "emergency") & events.encounter_id.isin(open_ae)
    )
    recent = pd.to_datetime(events.occurred) >= pd.Timestamp(day - timedelta(days=1))
    touched = events.assign(_r=recent).groupby(["setting", "encounter_id"])._r.transform("any")
    return (still_open | touched).astype(bool)
