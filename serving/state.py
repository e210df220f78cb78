"""What the service holds in memory: users, champion models, the current daily snapshot. `reload`
builds a new bundle and swaps it in one assignment, so requests never see half of a reload."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from features.series import practice_pcns
from phm.settings import Settings
from serving import snapshots
from serving.users import User, load_users, users_path
from training import tracking


@dataclass
class Bundle:
    users: list[User]
    champions: dict[str, snapshots.Champion]
    meta: dict | None
    scores: pd.DataFrame | None  # indexed by person_id
    practices: dict[str, str]  # practice -> PCN
    position: dict[int, int] = field(default_factory=dict)  # person_id -> row of `scores`
    columns: dict[str, np.ndarray] = field(default_factory=dict)  # plain NumPy copies for fast lookups
    features: tuple[dict[int, int], np.ndarray] | None = None  # today's predictors, loaded on first use
    loaded_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))


class ServiceState:
    """One per worker process. A reload in any worker touches a generation file that every worker
    checks on each request, so all workers swap to the new bundle; so does a change to the user list."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._seen = self._stamp()
        self.bundle = self._load()

    @property
    def generation_file(self) -> Path:
        return self.settings.home / "security" / "reload.generation"

    def _stamp(self) -> tuple[float, float]:
        def mtime(p: Path) -> float:
            try:
                return p.stat().st_mtime
            except OSError:
                return 0.0
        return mtime(self.generation_file), mtime(users_path(self.settings.home))

    def maybe_refresh(self) -> None:
        stamp = self._stamp()  # two stat calls per request: every worker sees a reload at once
        if stamp != self._seen:
            with self._lock:
                self._seen = stamp
                self.bundle = self._load()

    def _load(self) -> Bundle:
        tracking.configure(self.settings)
        champions = {}
        for name in ("emergency_admission", "flare_up"):
            found = snapshots.load_champion(name)
            if found is not None:
                champions[name] = found
        snap = snapshots.current(self.settings)
        meta, scores = snap if snap else (None, None)
        practices = practice_pcns(self.settings.warehouse_path) if self.settings.warehouse_path.exists() else {}
        position, columns = {}, {}
        if scores is not None:
            position = dict(zip(scores.person_id.tolist(), range(len(scores))))
            columns = {c: scores[c].to_numpy(dtype=object if scores[c].dtype.kind not in "iuf" else None)
                       for c in ("person_id", "risk", "band", "rank", "reasons", "practice_code")}
        return Bundle(load_users(self.settings.home), champions, meta, scores, practices, position=position,
                      columns=columns)

    def reload(self) -> dict:
        """Reload here and signal every other worker to do the same."""
        self.generation_file.parent.mkdir(parents=True, exist_ok=True)
        self.generation_file.write_text(str(time.time()))
        with self._lock:
            self._seen = self._stamp()
            self.bundle = self._load()
        return self.describe()

    def describe(self) -> dict:
        b = self.bundle
        return {"loaded_at": b.loaded_at, "snapshot": b.meta["date"] if b.meta else None,
                "models": {n: c.version for n, c in b.champions.items()}, "users": len(b.users)}

    def features_for(self, person_ids: list[int]) -> tuple[list[int], np.ndarray]:
        """Today's predictors (champion's column order) for those of these people in the snapshot."""
        b = self.bundle
        if b.features is None:
            folder = snapshots.snapshots_root(self.settings) / b.meta["snapshot_folder"]
            frame = pd.read_parquet(folder / "features.parquet")
            names = list(b.champions["emergency_admission"].model.feature_names_in_)
            b.features = (dict(zip(frame.person_id.tolist(), range(len(frame)))), frame[names].to_numpy("float64"))
        where, values = b.features
        found = [p for p in person_ids if p in where]
        return found, values[[where[p] for p in found]]
