"""Reading a snapshot with its latest delta: the delta's rows replace the snapshot's for the same people, then
ranks and bands are recomputed over everyone's risks with the snapshot's band cut-offs (the same function as
the daily job, so the ranks are those a full refresh would give)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from serving.batch.ranking import bands

DELTAS = "deltas"
FLAG = "event_flag"  # e.g. "discharged today after an emergency admission" (only in deltas)


def apply_delta(scores: pd.DataFrame, snapshot: Path, delta: str, meta: dict) -> pd.DataFrame:
    """`scores` of the snapshot with the delta's rows laid over them, re-ranked; `meta` gains `delta`."""
    folder = snapshot / DELTAS / delta
    changed = pd.read_parquet(folder / "scores.parquet")
    merged = lay_over(scores, changed, band_cutoffs(meta))
    meta["delta"] = json.loads((folder / "manifest.json").read_text())
    return merged


def lay_over(scores: pd.DataFrame, changed: pd.DataFrame, cutoffs: list[tuple[str, float]]) -> pd.DataFrame:
    """`scores` (in their order) with `changed` rows replacing theirs, and fresh ranks and bands."""
    out = scores.copy()
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
    out["rank"], out["band"] = bands(out.risk.to_numpy(dtype="float64"), cutoffs)
    return out


def band_cutoffs(meta: dict) -> list[tuple[str, float]]:
    return [(name, float(share)) for name, share in meta["bands"].items()]

