"""The snapshot store: immutable dated snapshot folders beside the warehouse and the pointer that names
the current one.

Readers follow a pointer file (`CURRENT.json`) that is replaced atomically only once a folder is complete,
so a crash or kill part-way leaves the previous snapshot intact and served (DuckDB allows one writer per
file; immutable Parquet snapshots let the service read while the job writes). Both daily jobs (in-process
and Spark) publish through `publish_snapshot`. A snapshot of a day before the live one is written but not
published unless asked (`phm score daily --date D --publish`): coordinators never silently get an old
worklist.

A job writes into `<folder>.partial` while holding an OS lock (`flock`) on a file inside it; the lock dies with
the process, however it ends. The folder only gets its `.partial` name once the lock is held, so every
`.partial` folder either has a live writer (locked: left alone) or none (a killed or crashed run: removed by the
next run). A partial folder whose writer ran on another host, or that has no lock file, is removed only when
nothing in it has changed for `STALE_AFTER` seconds: file locks are not trusted across hosts.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd

from phm.core.settings import Settings
from serving.batch.delta_apply import DELTAS, apply_delta, base_folder, delta_manifest
from serving.batch.ranking import BANDS
from serving.batch.snapshot_files import SUMS, check_files, file_sums, sealed
from training.registry import Champion

POINTER = "CURRENT.json"
POINTER_LOCK = ".snapshots.lock"  # beside the snapshots folder (which holds snapshots only); see `pointer_lock`
KEEP = 14  # dated snapshots kept
TREND_DAYS = 7  # the worklist's trend compares with the scores of a week before
FAULT_PAUSE = "PHM_FAULT_PAUSE_MID_WRITE"  # seconds to pause mid-write (fault-injection tests only)
PARTIAL, CREATING = ".partial", ".creating"  # a folder being written; one whose writer is taking its lock
WRITER_LOCK = ".writer.lock"  # held (flock) by the job writing a partial folder; names its process and host
STALE_AFTER = 6 * 3600  # seconds without a change after which an unverifiable partial folder is stale
RELOAD_SIGNAL = ("security", "reload.generation")  # every service worker reloads when this file changes

log = logging.getLogger("phm.snapshots")


def snapshots_root(settings: Settings) -> Path:
    return settings.warehouse_path.parent / "snapshots"


def snapshot_meta(
    day: date,
    people: int,
    champion: Champion,
    feature_hash: str,
    columns: dict[str, dict],
    band_counts: dict,
    previous: str | None,
    engine: str,
    approval: dict | None = None,
    bands: dict[str, float] | None = None,
    refused: dict[str, str] | None = None,
) -> dict:
    """The snapshot's manifest: what produced it (the worklist model and the models whose risk sits beside it, with
    versions, feature definitions and the approved configuration each scored under; the engine), its bands, and
    the models that were refused (their column left empty)."""
    models = {
        champion.name: {
            "role": "worklist",
            "version": champion.version,
            "feature_hash": feature_hash,
            "registered_feature_hash": champion.feature_hash,
            "people": int(people),
            **(approval or {}),
        }
    }
    models.update({name: {"role": "column", **info} for name, info in columns.items()})
    return {
        "date": str(day),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "people": int(people),
        "engine": engine,
        "worklist_model": champion.name,
        "models": models,
        "bands": dict(bands) if bands else {n: s for n, s in BANDS},
        "band_counts": {str(k): int(v) for k, v in band_counts.items()},
        "previous": previous,
        "refused": dict(refused or {}),
    }


def worklist_version(meta: dict) -> str:
    """The version of the model that ranked a snapshot's worklist."""
    return meta["models"][meta["worklist_model"]]["version"]


def write_snapshot(
    settings: Settings, scores: pd.DataFrame, features: pd.DataFrame, meta: dict, publish: bool | None = None
) -> Path:
    """Write a complete snapshot folder, then swap the pointer to it atomically (see `publish_snapshot`)."""

    def write(partial: Path) -> None:
        scores.to_parquet(partial / "scores.parquet", index=False)
        pause_mid_write()
        features.to_parquet(partial / "features.parquet", index=False)

    return publish_snapshot(settings, meta, write, publish)


def pause_mid_write() -> None:
    """Fault injection for tests: pause between the two tables of a snapshot."""
    pause = float(os.environ.get(FAULT_PAUSE, "0") or 0)
    if pause:
        time.sleep(pause)


def live_date(settings: Settings) -> str | None:
    """The day of the snapshot the pointer names (what coordinators see), or None."""
    pointer = snapshots_root(settings) / POINTER
    return json.loads(pointer.read_text())["date"] if pointer.exists() else None


def publish_snapshot(settings: Settings, meta: dict, write, publish: bool | None = None) -> Path:
    """`write(partial_folder)` writes the tables; then the manifest, an fsync of every file, the rename of the
    folder and, last, the atomic swap of the pointer. Until that swap readers see the previous snapshot.

    The pointer moves when `publish` is True, or (by default, None) unless the snapshot's day is before the live
    one's (read under `pointer_lock` once the folder is complete, so of two runs at once the later day is served): a
    re-score of a past day is kept beside the live snapshot, not served. `meta` records the outcome
    (`published`, `live_date`). Partial folders of earlier runs that were killed are removed first; a run that
    fails removes its own."""
    root = snapshots_root(settings)
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(root)
    folder = root / f"{meta['date']}_{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}"
    with _writing(folder) as partial:
        write(partial)
        meta[SUMS] = file_sums(partial, durable=True)  # durable before the pointer moves
        (partial / "manifest.json").write_text(sealed(settings.home, meta))
        with open(partial / "manifest.json", "rb") as fh:
            os.fsync(fh.fileno())
        partial.rename(folder)
    with pointer_lock(root):  # the live day as it is now: another run may have published while this one wrote
        live = live_date(settings)
        moves = publish if publish is not None else (live is None or meta["date"] >= live)
        meta["published"] = bool(moves)  # for the caller; not in the manifest (the pointer is the truth)
        meta["live_date"] = meta["date"] if moves else live
        if moves:
            tmp = root / (POINTER + ".tmp")
            tmp.write_text(json.dumps({"folder": folder.name, "date": meta["date"]}))
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, root / POINTER)
            signal_reload(
                settings
            )  # every worker serves the new snapshot from its next request, not only after a reload
    _prune(root, folder)
    return folder


def signal_reload(settings: Settings) -> None:
    """Tell every worker of a running service to reload (each compares the signal's time on every request)."""
    path = settings.home.joinpath(*RELOAD_SIGNAL)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(time.time()))


@contextmanager
def pointer_lock(root: Path) -> Iterator[None]:
    """Held (flock, waiting for it) by whoever reads the pointer to decide and then replaces it: the daily jobs and
    event deltas, so that no swap is decided on a pointer another has replaced meanwhile."""
    fd = os.open(root.parent / POINTER_LOCK, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextmanager
def _writing(folder: Path) -> Iterator[Path]:
    """`folder` + `.partial`, created with this process's lock held inside it; the lock is released (and the
    folder removed, if it was not published) when the block ends, or by the OS if the process dies."""
    creating = folder.with_name(f".{folder.name}{CREATING}")
    partial = folder.with_name(folder.name + PARTIAL)
    creating.mkdir()
    fd = os.open(creating / WRITER_LOCK, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(
            fd,
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                }
            ).encode(),
        )
        creating.rename(partial)  # visible as a partial folder only once it is locked
        try:
            yield partial
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        (folder / WRITER_LOCK).unlink(missing_ok=True)
    finally:
        os.close(fd)
        shutil.rmtree(creating, ignore_errors=True)


def remove_stale_partials(root: Path) -> list[str]:
    """Remove the partial folders no live job is writing (runs killed or crashed part-way); returns their names.
    A folder whose writer holds its lock is never touched."""
    removed = []
    for folder in sorted(root.iterdir()) if root.exists() else []:
        if folder.is_dir() and (folder.name.endswith(PARTIAL) or folder.name.endswith(CREATING)) and _stale(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    if removed:
        log.warning(
            "removed %d partial snapshot folder(s) left by runs that did not finish: %s",
            len(removed),
            ", ".join(removed),
        )
    return removed


def _stale(folder: Path) -> bool:
    """No live writer: its lock can be taken (the writer is gone), or, when that cannot be trusted (no lock file,
    a writer on another host), nothing in the folder has changed for STALE_AFTER seconds."""
    if folder.name.endswith(CREATING):  # its writer may be between creating the lock file and taking the lock
        return time.time() - _last_change(folder) > STALE_AFTER
    lock = folder / WRITER_LOCK
    try:
        owner = json.loads(lock.read_text() or "{}")
    except FileNotFoundError:
        owner = None
    except (OSError, ValueError):
        owner = {}
    if owner is not None and owner.get("host", socket.gethostname()) == socket.gethostname():
        try:
            fd = os.open(lock, os.O_RDWR)
        except FileNotFoundError:  # published or removed meanwhile
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True  # nobody holds it: the writer has gone
        except BlockingIOError:
            return False  # a live job is writing it
        finally:
            os.close(fd)
    return time.time() - _last_change(folder) > STALE_AFTER


def _last_change(folder: Path) -> float:
    """When anything in `folder` last changed (now, if the folder has just gone: it was published)."""
    try:
        times = [folder.stat().st_mtime]
    except FileNotFoundError:
        return time.time()
    for path in folder.rglob("*"):
        try:
            times.append(path.stat().st_mtime)
        except FileNotFoundError:
            continue
    return max(times)


def _prune(root: Path, keep: Path) -> None:
    """Keep the latest KEEP complete snapshots, the one just written and the live one; remove partial folders
    nobody writes."""
    pointer = root / POINTER
    live = json.loads(pointer.read_text())["folder"] if pointer.exists() else None
    for _day, _name, old in _done(root)[:-KEEP]:
        if old != keep and old.name != live:
            shutil.rmtree(old, ignore_errors=True)
    remove_stale_partials(root)


def _done(root: Path) -> list[tuple[date, str, Path]]:
    out = []
    for folder in root.iterdir() if root.exists() else []:
        if folder.is_dir() and not folder.name.endswith(".partial") and (folder / "manifest.json").exists():
            try:
                out.append((date.fromisoformat(folder.name[:10]), folder.name, folder))
            except ValueError:
                continue
    return sorted(out)


def dated_snapshots(settings: Settings) -> list[tuple[date, Path]]:
    """Every complete snapshot folder with its day, oldest first (several runs of one day: in run order)."""
    return [(d, folder) for d, _name, folder in _done(snapshots_root(settings))]


def earlier_folder(
    settings: Settings, day: date, days_back: int = TREND_DAYS, scored_by: tuple[str, str] | None = None
) -> Path | None:
    """The snapshot to compare `day` with: the latest dated at least `days_back` days earlier; else the latest
    dated before `day`; else none (the first snapshot has no trend). Never one of the same day (a re-score of a
    day compares with the earlier day its first run did) or a later one; with `scored_by` (model, version), only
    one that model version ranked (another version's risks are not comparable). Both engines' jobs use this."""
    done = [d for d in _done(snapshots_root(settings)) if d[0] < day]
    if scored_by is not None:
        done = [d for d in done if _ranked_by(d[2]) == (scored_by[0], str(scored_by[1]))]
    week = [d for d in done if d[0] <= day - timedelta(days=days_back)]
    return (week or done)[-1][2] if week or done else None


def _ranked_by(folder: Path) -> tuple[str, str] | None:
    meta = json.loads((folder / "manifest.json").read_text())
    return meta["worklist_model"], str(worklist_version(meta))


def earlier(
    settings: Settings, day: date, days_back: int = TREND_DAYS, scored_by: tuple[str, str] | None = None
) -> tuple[dict, pd.DataFrame] | None:
    """`earlier_folder`'s manifest and (person_id, risk)."""
    folder = earlier_folder(settings, day, days_back, scored_by)
    if folder is None:
        return None
    meta = json.loads((folder / "manifest.json").read_text())
    meta["snapshot_folder"] = folder.name
    return meta, pd.read_parquet(folder / "scores.parquet", columns=["person_id", "risk"])


def current_folder(settings: Settings) -> Path | None:
    """The folder the pointer names, or None when there is no snapshot yet."""
    root = snapshots_root(settings)
    pointer = root / POINTER
    if not pointer.exists():
        return None
    return root / json.loads(pointer.read_text())["folder"]


def current(settings: Settings) -> tuple[dict, pd.DataFrame] | None:
    """The snapshot the pointer names: (manifest, scores), or None when there is none yet. A snapshot written
    by Spark is a folder partitioned by practice: read the same way, with practice codes as text. When the
    pointer also names a delta (events since the snapshot, `serving.batch.delta`), its rows are laid over its base
    (the snapshot, or the snapshot re-scored at the delta's later index date); `index_date` says which date."""
    found = current_over(settings)
    return None if found is None else found[:2]


def current_over(
    settings: Settings, held: tuple[Path, pd.DataFrame] | None = None
) -> tuple[dict, pd.DataFrame, Path, pd.DataFrame] | None:
    """`current` and the base it read: (manifest, scores, base folder, the base's scores without the delta). A
    reader that kept the base of its last read passes it as `held` (folder, scores): when the pointer still lays
    its delta over that folder (immutable once published), only the delta is read."""
    root = snapshots_root(settings)
    try:
        pointer = json.loads((root / POINTER).read_text())
    except FileNotFoundError:
        return None
    folder = root / pointer["folder"]
    meta = json.loads((folder / "manifest.json").read_text())
    meta["snapshot_folder"] = folder.name
    meta["index_date"] = meta["date"]
    delta = delta_manifest(folder, pointer["delta"]) if pointer.get("delta") else None
    if delta is not None:  # events since the snapshot (small: checked at every read)
        check_files(folder / DELTAS / pointer["delta"], settings.home)
    based = base_folder(folder, delta) if delta is not None else folder
    if held is not None and held[0] == based:
        base = held[1]
    else:  # the snapshot, or its rolled base (with its own manifest)
        check_files(based, settings.home)
        base = pd.read_parquet(based / "scores.parquet")
        if isinstance(base["practice_code"].dtype, pd.CategoricalDtype):
            base["practice_code"] = base["practice_code"].astype(str)
    scores = apply_delta(base, folder, pointer["delta"], meta) if pointer.get("delta") else base
    return meta, scores, based, base
