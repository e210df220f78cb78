"""What the service holds in memory: users, champion models, the current daily snapshot. `reload`
builds a new bundle and swaps it in one assignment, so requests never see half of a reload."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone

import duckdb
import pandas as pd

from phm.settings import Settings
from serving import snapshots
from serving.users import User, load_users
from training import tracking


@dataclass
class Bundle:
    users: list[User]
    champions: dict[str, snapshots.Champion]
    meta: dict | None
    scores: pd.DataFrame | None  # indexed by person_id
    practices: dict[str, str]  # practice -> PCN
    loaded_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))


class ServiceState:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self.bundle = self._load()

    def _load(self) -> Bundle:
        tracking.configure(self.settings)
        champions = {}
        for name in ("emergency_admission", "flare_up"):
            found = snapshots.load_champion(name)
            if found is not None:
                champions[name] = found
        snap = snapshots.current(self.settings)
        meta, scores = (snap[0], snap[1].set_index("person_id", drop=False)) if snap else (None, None)
        practices: dict[str, str] = {}
        if self.settings.warehouse_path.exists():
            con = duckdb.connect(str(self.settings.warehouse_path), read_only=True)
            try:
                practices = dict(con.execute("SELECT practice_code, pcn_code FROM practices").fetchall())
            finally:
                con.close()
        return Bundle(load_users(self.settings.home), champions, meta, scores, practices)

    def reload(self) -> dict:
        with self._lock:
            self.bundle = self._load()
        return self.describe()

    def describe(self) -> dict:
        b = self.bundle
        return {"loaded_at": b.loaded_at, "snapshot": b.meta["date"] if b.meta else None,
                "models": {n: c.version for n, c in b.champions.items()}, "users": len(b.users)}

    def features_for(self, person_ids: list[int]) -> pd.DataFrame:
        """Today's predictors for these people (read from the snapshot on demand)."""
        folder = snapshots.snapshots_root(self.settings) / self.bundle.meta["snapshot_folder"]
        return pd.read_parquet(folder / "features.parquet", filters=[("person_id", "in", person_ids)])
