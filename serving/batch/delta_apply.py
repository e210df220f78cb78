"""Reading a snapshot with its latest delta: the delta's rows replace those of its base (the snapshot, or the
snapshot's rolled base when the delta's index date is later: `serving.batch.roll`) for the same people, then
ranks and bands are recomputed over everyone's risks with the snapshot's band cut-offs (the same function as
the daily job, so the ranks are those a full refresh at the delta's index date would give). The approved random
holdout is then applied as the daily job applies it (`serving.batch.ranking.withhold`): the `held_out` column, as
the delta leaves it, names everyone held out at the delta's index date."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from serving.batch.ranking import bands, withhold

DELTAS = "deltas"
FLAG = "event_flag"  # e.g. "discharged today after an emergency admission" (only in deltas)
HELD = "held_out"  # in the approved random holdout (`serving.batch.ranking.hold_out`)


def delta_manifest(snapshot: Path, delta: str) -> dict:
    return json.loads((snapshot / DELTAS / delta / "manifest.json").read_text())


def base_folder(snapshot: Path, manifest: dict) -> Path:
    """What a delta is laid over: the snapshot itself, or its rolled base at the delta's later index date."""
    return snapshot / manifest["base"] if manifest.get("base") else snapshot


def apply_delta(scores: pd.DataFrame, snapshot: Path, delta: str, meta: dict) -> pd.DataFrame:
    """`scores` of the delta's base (see `base_folder`) with the delta's rows laid over them, re-ranked; `meta`
    gains `delta` (its manifest), `delta_folder` and `index_date`."""
    folder = snapshot / DELTAS / delta
    changed = pd.read_parquet(folder / "scores.parquet")
    merged = lay_over(scores, changed, band_cutoffs(meta))
    meta["delta"] = delta_manifest(snapshot, delta)
    meta["delta_folder"] = delta
    meta["index_date"] = meta["delta"].get("index_date", meta["date"])
    return merged


def lay_over(scores: pd.DataFrame, changed: pd.DataFrame, cutoffs: list[tuple[str, float]]) -> pd.DataFrame:
    """`scores` (in their order) with `changed` rows replacing theirs, and fresh ranks and bands, the held-out
    moved to `routine` below the people listed."""
    out = overlay(scores, changed)
    rank, band = bands(out.risk.to_numpy(dtype="float64"), cutoffs)
    if HELD in out:
        withhold(band, held_mask(out), rank)
    out["rank"], out["band"] = rank, band
    return out


def held_mask(scores: pd.DataFrame) -> np.ndarray:
    """Who is held out (`held_out` true; none when the column is missing, as in snapshots before it)."""
    if HELD not in scores:
        return np.zeros(len(scores), bool)
    return np.asarray(scores[HELD].to_numpy(dtype=object) == True, dtype=bool)  # noqa: E712  (None, NaN: no)


def overlay(scores: pd.DataFrame, changed: pd.DataFrame) -> pd.DataFrame:
    """A copy of `scores` (in their order, ranks and bands untouched) with `changed` rows replacing theirs."""
    out = scores.copy(deep=False)  # every column replaced below is a new array: `scores` stays as it was
    if FLAG not in out:
        out[FLAG] = None
    at = pd.Index(out.person_id).get_indexer(changed.person_id)
    keep = at >= 0
    for column in changed.columns:
        if column in ("person_id", "rank", "band"):
            continue
        if column not in out:
            out[column] = None
        values = out[column].to_numpy(copy=True)
        if values.dtype != object and changed[column].dtype == object:
            values = values.astype(object)
        values[at[keep]] = changed[column].to_numpy()[keep]
        out[column] = values
    return out


def band_cutoffs(meta: dict) -> list[tuple[str, float]]:
    return [(name, float(share)) for name, share in meta["bands"].items()]
