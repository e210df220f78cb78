"""The bed nowcast as the service shows it (the Capacity page, `GET /api/nowcast`): the latest one kept by
`phm forecast nowcast`, read only when it is exactly a kept nowcast (anything else is refused, the reason logged),
with its age and whether it agrees with the forecasts' data."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

from serving.queries import QueryError
from serving.state import ServiceState
from training.nowcast_kept import NOWCAST_FILE, KeptNowcast, load

log = logging.getLogger("phm.serving")
STALE_HOURS = 24  # a nowcast made longer ago than this is flagged: bed managers re-make it several times a day
FIELDS = ("date", "in_beds_now", "nowcast", "q025", "q10", "q90", "q975")


def nowcast(st: ServiceState, site: str) -> dict:
    """The kept nowcast of a site (or the ICS): each night's expected beds and ranges (fixed fields, counts only), the
    night it starts from, when it was made and how many hours ago (`stale` past a day), the nights its ranges rest
    on, its notes, and the forecasts' data end beside it."""
    path = st.settings.home / "nowcast" / NOWCAST_FILE
    if not path.exists() and not path.is_symlink():
        raise QueryError(
            409, "There is no bed nowcast yet: `phm forecast nowcast` makes one (a data scientist runs it)."
        )
    try:
        info = path.stat()
        kept = _kept(str(path), (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns))
    except (OSError, ValueError) as exc:  # damaged, truncated, another shape, a folder: refused, never half-shown
        log.error("the kept nowcast %s cannot be used: %s", path, type(exc).__name__)
        raise QueryError(
            503, "The bed nowcast kept by the service cannot be read: run `phm forecast nowcast` again."
        ) from exc
    sites = sorted({r.site for r in kept.rows}, key=lambda s: (s != "ICS", s))
    if site not in sites:
        raise QueryError(404, f"There is no bed nowcast for {site!r}. It covers {', '.join(sites)}.")
    age = (datetime.now(timezone.utc) - kept.made.astimezone(timezone.utc)).total_seconds() / 3600
    rows = [r.model_dump(mode="json", include=set(FIELDS)) for r in kept.rows if r.site == site]
    return {
        "site": site,
        "night": str(kept.night),
        "made": kept.made.isoformat(),
        "age_hours": round(age, 1),
        "stale": age > STALE_HOURS,
        "forecasts_data_end": _forecasts_end(st),
        "calibration": kept.calibration.model_dump(mode="json"),
        "ranges_given": all(r[q] is not None for r in rows for q in ("q025", "q10", "q90", "q975")),
        "notes": kept.notes,
        "nights": [{k: r[k] for k in FIELDS} for r in rows],
    }


@lru_cache(maxsize=2)
def _kept(path: str, _version: tuple) -> KeptNowcast:
    """Read once per version of the file (inode, size, modification and change times: a file restored with its
    old modification time is still a new version)."""
    return load(Path(path))


def _forecasts_end(st: ServiceState) -> str | None:
    try:
        return str(json.loads((st.settings.home / "forecasts" / "latest" / "fit.json").read_text())["data_end"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
