"""What one service worker holds of the current snapshot (`Bundle`, swapped whole on a reload) and of the base a
delta is laid over (`Held`, kept across reloads for deltas over the same base)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.disclosure import Release
from training.registry import Champion


@dataclass
class Held:
    """A base folder's scores (before any delta) and predictors, as read: immutable once published, so a reload
    for a new delta over the same base reuses them instead of re-reading the whole population."""

    folder: Path
    scores: pd.DataFrame
    features: tuple[dict[int, int], np.ndarray] | None = None
    feature_names: tuple[str, ...] = ()


@dataclass
class Bundle:
    champions: dict[str, Champion]
    meta: dict | None
    scores: pd.DataFrame | None  # indexed by person_id
    practices: dict[str, str]  # practice -> PCN
    position: dict[int, int] = field(default_factory=dict)  # person_id -> row of `scores`
    columns: dict[str, np.ndarray] = field(default_factory=dict)  # plain NumPy copies for fast lookups
    # today's predictors (on-demand reasons): the base's (person -> row, values) and a delta's people's, by person
    features: tuple[dict[int, int], np.ndarray, dict[int, np.ndarray]] | None = None
    make_release: Callable[[], Release] | None = field(default=None, repr=False)  # see `release`
    scoped: dict[tuple[str, ...], Release] = field(default_factory=dict)  # ... of coordinators' practice lists
    refusals: dict[str, str] = field(default_factory=dict)  # model -> why its champion is not used
    snapshot_refusal: str | None = None  # why the current snapshot is not served (the worklist is paused)
    cases: dict[str, dict] = field(default_factory=dict)  # model -> its champion's safety case (summary)
    in_band_since: pd.Series | None = None  # person_id -> first day of their unbroken run in a worklist band
    history_from: str | None = None  # the oldest snapshot that run was read from
    held: Held | None = None  # the base the scores were laid over (kept: a new delta over it reads only the delta)
    held_ids: frozenset[int] = frozenset()  # the scores' `held_out` people (a delta's may not be in the record yet)
    loaded_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    _release: list = field(default_factory=list, repr=False)
    _release_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def release(self) -> Release | None:
        """The protected aggregates of the whole ICS: computed once per bundle, off the reload's path (a reload
        starts it in the background, `prepare_release`); a request that comes first waits for it."""
        if self.make_release is None:
            return None
        with self._release_lock:
            if not self._release:
                self._release.append(self.make_release())
            return self._release[0]

    def prepare_release(self) -> None:
        if self.make_release is not None:
            threading.Thread(target=lambda: self.release, name="phm-release", daemon=True).start()
