"""What the service holds in memory: users, champion models, the current daily snapshot and its protected
aggregates. `reload` builds a new bundle and swaps it in one assignment, so requests never see half of a reload.
The user list is re-read whenever its file changes; a list that cannot be read leaves the service without
users (authenticated requests get 503) until a good read, never with the previous list.

The service uses only what a clinical safety officer approved (`serving.governance.safety_case`): a champion
whose report is not approved, or whose configuration in force differs from the approved one, is not loaded
(`refusals` says why); the snapshot is served only if it was scored under the approved configuration now in
force (else the worklist is paused, `snapshot_refusal`); a column of a refused model is left empty. Any write to
the hazard log (a decision, a change review, a promotion, an audit) makes every worker reload."""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from evaluation.disclosure import Policy, Release
from features.series import practice_pcns
from models import specs
from phm.core.settings import Settings
from phm.operational.database import DatabaseError, upgrade
from serving.batch.common import approved_champion
from serving.batch.delta_apply import DELTAS, base_folder, held_mask
from serving.batch.history import band_runs
from serving.batch.ranking import BAND_ORDER
from serving.batch.snapshot_files import SnapshotAltered
from serving.batch.store import RELOAD_SIGNAL, current_over, snapshots_root
from serving.bundle import Bundle, Held
from serving.governance.configuration import data_source
from serving.governance.hazard_log import hazard_log_path
from serving.governance.safety_case import Case, SafetyCaseError, case
from serving.holdout_view import HeldOut
from serving.sessions import Sessions
from serving.users import User, UsersError, load_users, users_path
from training import tracking
from training.registry import Champion

log = logging.getLogger("phm.serving")
DIMENSIONS = ["band", "segment", "age_band"]  # the breakdowns of the cohort summary (besides practice and PCN)

PREDICT_THREADS = 1  # each worker predicts on one thread; the workers (one per core) are the parallelism


def _settle() -> None:
    """Collect once, then hide every surviving object from the cyclic garbage collector (`gc.freeze`).
    The loaded snapshot and libraries make a full collection take ~0.2 s, which otherwise stalls every
    request in flight whenever one happens; a reload unfreezes, collects the old bundle and freezes again."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class UsersUnavailable(RuntimeError):
    """The user list cannot be read: nobody can be authenticated until it can."""


@dataclass
class Users:
    """The user list as read, indexed by token digest and by name."""

    by_digest: dict[str, User] = field(default_factory=dict)
    by_name: dict[str, User] = field(default_factory=dict)

    @classmethod
    def of(cls, users: list[User]) -> Users:
        return cls({u.token_sha256: u for u in users}, {u.name: u for u in users})


class ServiceState:
    """One per worker process. A reload in any worker touches a generation file that every worker
    checks on each request, so all workers swap to the new bundle; so does a change to the user list."""

    def __init__(self, settings: Settings, *, background: bool = True, reread: Callable[[], Settings] | None = None):
        """`background=False` (a one-shot command) computes nothing ahead in a background thread (a thread in native
        code at exit can abort it). `reread` (the service's `get_settings`) reads the settings again at every
        reload, so a changed phm.toml (a policy a safety officer has just approved) is used without a restart."""
        self.settings = settings
        self._reread = reread
        self.background = background
        self.policy = Policy.from_settings(settings)
        self.sessions = Sessions(settings)
        self._lock = threading.Lock()
        self._seen = self._stamp()
        self._users_seen: tuple | None = None
        self._users: Users | None = None
        self.users_error: str | None = None
        self._read_users()
        self.log_problems = self._check_logs()
        self.schema_ready = False
        try:
            self.ensure_schema()
        except DatabaseError:
            pass  # logged; pages answer 503 until the database can be reached
        self.bundle = self._load()
        if background:
            self.bundle.prepare_release()
        self.held_out = HeldOut(settings, specs.worklist().name, live=lambda: self.bundle.held_ids)
        _settle()

    def _check_logs(self) -> list[str]:
        """The hazard and access logs' ends against their signed heads, at start: a log cut short, emptied or
        deleted is reported here (and no fresh chain is ever started over it: appends refuse, so person-level
        answers fail closed until it is restored)."""
        from phm.core import ledger_check
        from serving.access import log_path

        problems = []
        for path in (log_path(self.settings.home), self.settings.home / "safety" / "hazard_log.jsonl"):
            for problem in ledger_check.head_problems(path):
                logging.getLogger("phm.serving").error("at start: %s", problem)
                problems.append(problem)
        return problems

    # ---- the operational database ---------------------------------------------------------------------
    def ensure_schema(self) -> None:
        """Migrate the operational database once per process (retried on the next use after a failure)."""
        if not self.schema_ready:
            try:
                upgrade(self.settings)
                self.schema_ready = True
            except DatabaseError as exc:
                log.error("%s; signing in is unavailable until it can be reached", exc)
                raise

    # ---- users ----------------------------------------------------------------------------------------------
    def _users_stamp(self) -> tuple | None:
        try:
            st = os.stat(users_path(self.settings.home))
        except FileNotFoundError:
            return None
        except OSError:
            return ("unreadable",)
        return st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino

    def _read_users(self) -> None:
        stamp = self._users_stamp()
        try:
            found = Users.of(load_users(self.settings.home))
        except UsersError as exc:
            if self.users_error != str(exc):
                log.error("user list unusable, refusing every authenticated request until it is fixed: %s", exc)
            self._users, self.users_error, self._users_seen = None, str(exc), stamp
            return
        if self.users_error is not None:
            log.warning("user list readable again (%d users): authenticated requests resume", len(found.by_name))
        self._users, self.users_error, self._users_seen = found, None, stamp

    @property
    def users(self) -> Users:
        """The current user list; raises `UsersUnavailable` while it cannot be read."""
        if self._users is None:
            raise UsersUnavailable(self.users_error or "the user list cannot be read")
        return self._users

    @property
    def generation_file(self) -> Path:
        return self.settings.home.joinpath(*RELOAD_SIGNAL)

    def _stamp(self) -> tuple[float, float]:
        def mtime(p: Path) -> float:
            try:
                return p.stat().st_mtime
            except OSError:
                return 0.0

        return mtime(self.generation_file), mtime(hazard_log_path(self.settings))

    def _fresh_settings(self) -> None:
        """Read the settings again (see `__init__`); unreadable ones leave those in force, and say why."""
        try:
            fresh = self._reread() if self._reread is not None else None
            if fresh is not None and fresh.home == self.settings.home:
                self.settings, self.policy = fresh, Policy.from_settings(fresh)  # both, or neither
        except ValueError as exc:  # SettingsError: a slip in phm.toml
            log.error("settings cannot be read again, those read before stay in force: %s", exc)

    def maybe_refresh(self) -> None:
        stamp = self._stamp()  # a reload or a hazard-log write is seen by every worker
        if stamp != self._seen:
            with self._lock:
                self._seen = stamp
                self._fresh_settings()
                self.bundle = self._load()
                if self.background:
                    self.bundle.prepare_release()
                _settle()
        if self.users_error is not None or self._users_stamp() != self._users_seen:
            with self._lock:
                self._read_users()

    def _load(self) -> Bundle:
        tracking.configure(self.settings)
        source = data_source(self.settings)
        champions, refusals, cases = {}, {}, {}
        for name in specs.NAMES:
            try:
                found, c, refused = approved_champion(self.settings, specs.get(name), source)
            except ValueError as exc:  # a policy that cannot apply, a version missing from the registry
                found, c, refused = None, None, f"{name} may not be used: {exc}"
            if c is not None:
                cases[name] = c.summary()
            if refused:
                refusals[name] = refused
            elif found is not None:
                found.model.use_threads(PREDICT_THREADS)
                champions[name] = found
        previous = getattr(self, "bundle", None)
        was = previous.held if previous is not None else None
        snapshot_refusal = None
        try:
            snap = current_over(self.settings, (was.folder, was.scores) if was is not None else None)
        except SnapshotAltered as exc:  # nothing of it is served; the worklist is paused, saying why
            snap, snapshot_refusal = None, f"the worklist is paused: {exc}"
            log.error("%s", snapshot_refusal)
        meta, scores = snap[:2] if snap else (None, None)
        held = None
        if snap is not None:
            held = was if was is not None and was.folder == snap[2] else Held(snap[2], snap[3])
        if scores is not None and held is not None and scores is held.scores:
            scores = scores.copy()  # columns may be blanked below: the held base stays as read
        if meta is not None:
            snapshot_refusal, blank = self._check_snapshot(meta, source)
            if snapshot_refusal:
                meta, scores = None, None
            for column in blank:
                scores[column] = np.nan
        practices = practice_pcns(self.settings.warehouse_path) if self.settings.warehouse_path.exists() else {}
        position, columns = {}, {}
        if scores is not None and was is held and previous.position and len(previous.position) == len(scores):
            position = previous.position  # a delta over the same base keeps everyone's row
        elif scores is not None:
            position = dict(zip(scores.person_id.tolist(), range(len(scores))))
        if scores is not None:
            columns = {
                c: scores[c].to_numpy(dtype=object if scores[c].dtype.kind not in "iuf" else None)
                for c in ("person_id", "risk", "band", "rank", "reasons", "practice_code")
            }
        since, history_from = band_runs(self.settings, meta["date"], scores) if scores is not None else (None, None)
        return Bundle(
            champions,
            meta,
            scores,
            practices,
            position=position,
            columns=columns,
            in_band_since=since.set_index("person_id").in_band_since if since is not None else None,
            history_from=history_from,
            features=self._features(meta, scores, position, champions, held),
            held=held,
            held_ids=frozenset(scores.person_id[held_mask(scores)].tolist()) if scores is not None else frozenset(),
            make_release=(lambda: self._release(scores, practices)) if scores is not None else None,
            refusals=refusals,
            snapshot_refusal=snapshot_refusal,
            cases=cases,
        )

    def _check_snapshot(self, meta: dict, source: str) -> tuple[str | None, list[str]]:
        """Why the snapshot may not be served (None when it may), and the columns of models whose risk in it may
        not be shown: each model must have scored under the approved configuration in force now."""
        day, blank = meta.get("date"), []
        for name, info in meta.get("models", {}).items():
            problem = self._scored_under_approval(name, info, source, day)
            if problem is None:
                continue
            if info.get("role") == "worklist":
                return f"the worklist of {day} is paused: {problem}", []
            if info.get("column"):
                blank.append(info["column"])
        return None, blank

    def _scored_under_approval(self, name: str, info: dict, source: str, day: str | None) -> str | None:
        try:
            c: Case = case(self.settings, name, int(info["version"]), source=source)
        except (SafetyCaseError, KeyError, ValueError) as exc:
            return f"its model cannot be checked ({exc})"
        if not c.ok:
            return c.problem
        scored, approved = info.get("configuration_sha256"), c.current.fingerprint()
        if scored is None:
            return (
                f"the scores of {day} record no approved configuration (scored before approvals covered one); "
                "run `phm score daily`"
            )
        if scored != approved:
            return (
                f"the scores of {day} were computed under configuration {scored[:12]}, not the approved "
                f"configuration in force ({approved[:12]}); run `phm score daily` to score under it"
            )
        return None

    def _release(
        self, scores: pd.DataFrame, practices: dict[str, str], scope: list[str] | None = None, root: str = "ICS"
    ) -> Release:
        """The protected counts and mean risks of the snapshot (of `scope`'s practices only, if given)."""
        frame = scores[["practice_code", "risk", *DIMENSIONS]]
        if scope is not None:
            frame = frame[frame.practice_code.isin(scope)]
        frame = frame.assign(pcn_code=frame.practice_code.map(practices).fillna("unknown"))
        levels = {
            "band": sorted(BAND_ORDER, key=BAND_ORDER.get),
            "segment": sorted(scores.segment.astype(str).unique()),
            "age_band": sorted(scores.age_band.astype(str).unique()),
        }
        return self.policy.release(frame, DIMENSIONS, levels=levels, root_label=root)

    def scoped_release(self, practices: list[str]) -> Release:
        """The release of one coordinator's practices (computed once per snapshot and practice list)."""
        b = self.bundle
        key = tuple(sorted(practices))
        found = b.scoped.get(key)
        if found is None:
            found = self._release(b.scores, b.practices, list(key), root="your practices")
            if len(b.scoped) < 1000:
                b.scoped[key] = found
        return found

    def _features(
        self,
        meta: dict | None,
        scores: pd.DataFrame | None,
        position: dict[int, int],
        champions: dict[str, Champion],
        held: Held | None = None,
    ) -> tuple[dict[int, int], np.ndarray, dict[int, np.ndarray]] | None:
        """Today's predictors in the champion's column order, read with the snapshot (not on a first request,
        which would stall it and every request queued behind it). None when the champion's predictors are
        not in the snapshot (a champion promoted after the scoring run): no on-demand reasons then."""
        champ = champions.get(specs.worklist().name)
        if meta is None or scores is None or champ is None:
            return None
        snapshot = snapshots_root(self.settings) / meta["snapshot_folder"]
        path = base_folder(snapshot, meta.get("delta") or {}) / "features.parquet"
        names = list(champ.model.feature_names_in_)
        if not path.exists() or not set(names) <= set(pq.read_schema(path).names):
            return None
        if held is not None and held.features is not None and held.feature_names == tuple(names):
            where, values = held.features  # the base's predictors, read when the base was
        else:
            frame = pd.read_parquet(path, columns=["person_id", *names])
            ids = frame.person_id.to_numpy()
            same = len(ids) == len(scores) and np.array_equal(ids, scores.person_id.to_numpy())
            where = position if same else dict(zip(ids.tolist(), range(len(ids))))
            values = frame[names].to_numpy("float64")
            if held is not None:
                held.features, held.feature_names = (where, values), tuple(names)
        newer: dict[int, np.ndarray] = {}
        if meta.get("delta_folder"):  # the recomputed people's predictors, at the delta's index date
            frame = pd.read_parquet(snapshot / DELTAS / meta["delta_folder"] / "features.parquet")
            if len(frame) and set(names) <= set(frame.columns):
                rows = frame[names].to_numpy("float64")
                newer = {p: rows[i] for i, p in enumerate(frame.person_id.tolist()) if p in where}
        return where, values, newer

    def reload(self) -> dict:
        """Reload here and signal every other worker to do the same."""
        self.generation_file.parent.mkdir(parents=True, exist_ok=True)
        self.generation_file.write_text(str(time.time()))
        with self._lock:
            self._seen = self._stamp()
            self._fresh_settings()
            self.bundle = self._load()
            if self.background:
                self.bundle.prepare_release()
            self._read_users()
            _settle()
        return self.describe()

    def describe(self) -> dict:
        b = self.bundle
        return {
            "loaded_at": b.loaded_at,
            "snapshot": b.meta["date"] if b.meta else None,
            "models": {n: c.version for n, c in b.champions.items()},
            "refused": sorted(b.refusals),
            "worklist": "paused" if b.snapshot_refusal else ("ready" if b.meta else "no snapshot"),
        }

    def features_for(self, person_ids: list[int]) -> tuple[list[int], np.ndarray]:
        """Today's predictors (champion's column order) for those of these people in the snapshot."""
        if self.bundle.features is None:
            return [], np.empty((0, 0))
        where, values, newer = self.bundle.features
        found = [p for p in person_ids if p in where]
        rows = values[[where[p] for p in found]]
        for i, p in enumerate(found):
            if p in newer:
                rows[i] = newer[p]
        return found, rows
