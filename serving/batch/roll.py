"""The index date of an incremental refresh, and the whole-population base it ranks against when that date is
after its snapshot's.

Features use data strictly before the index date, so an admission, discharge or A&E arrival on or after the
snapshot's day can change a score only at a later index date. A delta therefore has one index date for
everyone: the day after the latest admission, discharge or arrival date in the events it applies, and never
before its snapshot's day (`features.events.fold.index_date`). Ranks and bands compare people, so they are computed among scores of
one index date only: when the delta's date is later than the snapshot's, everyone without events is re-scored at
it too, by the daily job's own code over the same warehouse (`score_population`). That *rolled base* is computed
once per snapshot and date (the first event dated on the snapshot's day pays for it, unless `prepare_rolled` ran
ahead of it) and kept in `<snapshot>/rolled/<date>/`, written aside and renamed into place; the delta then
recomputes only the people the events concern, at the same date, and is laid over it. So the worklist with a
delta equals a full daily refresh at the delta's index date on the warehouse with the events absorbed."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import date, timedelta
from pathlib import Path

from phm.core.settings import Settings
from serving.batch.common import SnapshotError
from serving.batch.inprocess import score_population
from serving.batch.snapshot_files import SUMS, file_sums, sealed
from serving.batch.store import current_folder, worklist_version

ROLLED = "rolled"


def rolled_folder(snapshot: Path, day: date) -> Path:
    return snapshot / ROLLED / str(day)


def ensure_rolled(settings: Settings, snapshot: Path, meta: dict, day: date, progress=None) -> Path:
    """`<snapshot>/rolled/<day>/` (scores, features, manifest): everyone re-scored at `day` as the daily job
    would, by the champion that scored the snapshot; computed now if it is not there yet."""
    out = rolled_folder(snapshot, day)
    if (out / "manifest.json").exists():
        return out
    say = progress or (lambda _m: None)
    say(f"re-scoring everyone at {day}: the events reach past the snapshot's index date {meta['date']}")
    scores, X, rolled, _stages, _listed = score_population(settings, day, say, settings.features_dir / "rolled")
    if str(worklist_version(rolled)) != str(worklist_version(meta)):
        raise SnapshotError(
            f"the champion is version {worklist_version(rolled)} but the snapshot was scored by "
            f"version {worklist_version(meta)}: run the daily job first"
        )
    rolled["rolled_from"] = snapshot.name
    partial = out.with_name(f".{day}.{uuid.uuid4().hex[:8]}.partial")
    partial.mkdir(parents=True)
    try:
        scores.to_parquet(partial / "scores.parquet", index=False)
        X.assign(person_id=scores.person_id.to_numpy()).to_parquet(partial / "features.parquet", index=False)
        rolled[SUMS] = file_sums(partial)  # checked whenever a delta's read lays over it
        (partial / "manifest.json").write_text(sealed(settings.home, rolled))
        for f in partial.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        try:
            partial.rename(out)
        except OSError:  # another refresh published the same base meanwhile: theirs is as good as ours
            if not (out / "manifest.json").exists():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return out


def prepare_next(settings: Settings, progress=None) -> Path | None:
    """Compute ahead the base for the day after the live snapshot's (where the first event dated on the snapshot's
    day will take the delta), so that event does not wait for it; None when there is no in-process snapshot."""
    folder = current_folder(settings)
    if folder is None:
        return None
    meta = json.loads((folder / "manifest.json").read_text())
    if meta.get("engine") != "duckdb":
        return None
    return ensure_rolled(settings, folder, meta, date.fromisoformat(meta["date"]) + timedelta(days=1), progress)
