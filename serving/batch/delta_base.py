"""What an incremental refresh reads of the base it lays a delta over (a snapshot, or its rolled base): everyone's
score rows, risks, stored bands and where each person's row sits, read once per base and process and kept while
the base is the live one, so that each delta costs what its people cost, not a re-read of the whole population.
Base folders are immutable once published (written aside, then renamed), so a base read once stays true.

The base's features are not held (a population of predictors is large): `feature_rows` reads only the row groups
holding the people asked for."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from serving.batch.delta_apply import held_mask


@dataclass
class Base:
    """One base folder's scores as read (`practice_code` as text), indexed by person."""

    folder: Path
    scores: pd.DataFrame
    where: pd.Index  # person_id, in the rows' order: `where.get_indexer(ids)` -> rows (-1: not in the base)
    risk: np.ndarray  # float64
    routine: np.ndarray  # bool: the stored band is "routine"
    band: np.ndarray  # the stored band (object)
    held: np.ndarray  # bool: in the approved random holdout (`held_out`; none in snapshots without the column)
    _feature_rows: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    _codes: tuple[tuple, np.ndarray] | None = field(default=None, repr=False)

    def band_code(self, names: np.ndarray) -> np.ndarray:
        """The stored bands as their index in `names` (`serving.batch.ranking.band_names`; -1: not among them)."""
        key = tuple(names)
        if self._codes is None or self._codes[0] != key:
            code = np.full(self.band.size, -1, dtype=np.int8)
            for i, name in enumerate(key):
                code[self.band == name] = i
            self._codes = (key, code)
        return self._codes[1]

    def rows_of(self, person_ids: np.ndarray) -> np.ndarray:
        return self.where.get_indexer(np.asarray(person_ids, dtype=np.int64))


_lock = threading.Lock()
_held: dict[str, Base] = {}


def read_base(folder: Path) -> Base:
    """The base in `folder`, read now or (same process, same folder) kept from before; only the latest is kept."""
    key = str(folder.resolve())
    with _lock:
        found = _held.get(key)
        if found is not None:
            return found
    scores = pd.read_parquet(folder / "scores.parquet")
    if isinstance(scores["practice_code"].dtype, pd.CategoricalDtype):
        scores["practice_code"] = scores["practice_code"].astype(str)
    band = scores["band"].to_numpy(dtype=object)
    base = Base(
        folder=folder,
        scores=scores,
        where=pd.Index(scores.person_id.to_numpy(dtype=np.int64)),
        risk=scores.risk.to_numpy(dtype="float64"),
        routine=band == "routine",
        band=band,
        held=held_mask(scores),
    )
    with _lock:
        _held.clear()
        _held[key] = base
    return base


def forget() -> None:
    """Drop the kept base (tests; a process that is done with deltas)."""
    with _lock:
        _held.clear()


def feature_rows(base: Base, person_ids: np.ndarray, columns: list[str]) -> pd.DataFrame:
    """`columns` of the base's stored features for these people (those in it), reading only their row groups."""
    path = base.folder / "features.parquet"
    file = pq.ParquetFile(path)
    if base._feature_rows is None:  # the features' own person order and row-group starts, read once
        ids = file.read(columns=["person_id"]).column(0).to_numpy()
        starts = np.cumsum([0] + [file.metadata.row_group(i).num_rows for i in range(file.num_row_groups)])
        base._feature_rows = (ids, starts)
    ids, starts = base._feature_rows
    at = pd.Index(ids).get_indexer(np.asarray(person_ids, dtype=np.int64))
    at = np.sort(at[at >= 0])
    if not at.size:
        return pd.DataFrame(columns=["person_id", *columns])
    groups = np.unique(np.searchsorted(starts, at, side="right") - 1)
    table = file.read_row_groups(groups.tolist(), columns=["person_id", *columns])
    offsets = np.concatenate([[0], np.cumsum([starts[g + 1] - starts[g] for g in groups])])
    local = offsets[np.searchsorted(groups, np.searchsorted(starts, at, side="right") - 1)] + (
        at - starts[np.searchsorted(starts, at, side="right") - 1]
    )
    return table.take(local).to_pandas()
