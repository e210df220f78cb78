"""What both daily jobs share: their error, the default scoring date, and the safety check of each champion
before it scores (its approved configuration must be the configuration in force; `serving.governance.safety_case`).
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from features.engine.base import Engine
from features.series import ACTIVITY_DAYS, data_end
from models.specs.base import ModelSpec
from phm.core.settings import Settings
from serving.governance.safety_case import Case, case
from training import registry
from training.dates import lookback_days
from training.registry import Champion, load_champion


class SnapshotError(RuntimeError):
    """No snapshot can be produced or read (no champion model, no warehouse, an unapproved configuration, ...)."""


def default_date(warehouse: Path) -> date:
    """The day after the data ends."""
    return data_end(warehouse) + timedelta(days=1)


def check_day(engine: Engine, day: date, spec: ModelSpec) -> None:
    """Refuse a scoring date the warehouse's data cannot support: after the day after its latest activity (an
    admission, discharge, A&E arrival or prescription; events absorbed into it count), where everything since the
    data end would be scored as if nothing had happened, and such a snapshot would be served in place of every
    later correct one; or before the data cover the model's longest look-back, where histories would be cut short."""
    present = engine.columns()
    parts = [
        f"SELECT CAST(min({c}) AS DATE) AS lo, CAST(max({c}) AS DATE) AS hi FROM {engine.table(t)}"
        for t, c in ACTIVITY_DAYS
        if c in present.get(t, ())
    ]
    first, last = (
        engine.rows(f"SELECT min(lo), max(hi) FROM ({' UNION ALL '.join(parts)}) m")[0] if parts else (None,) * 2
    )
    if last is None:
        raise SnapshotError("the warehouse records no activity, so there is nothing to score; run `phm data load`")
    first, last = (d.date() if hasattr(d, "hour") else d for d in (first, last))
    if day > last + timedelta(days=1):
        raise SnapshotError(
            f"scoring date {day} is after the data: its latest activity is on {last}, so a snapshot as at {day} would "
            f"miss everything since; the latest scoring date is {last + timedelta(days=1)} (the default). Nothing "
            "was scored"
        )
    history = lookback_days(spec)
    if day < first + timedelta(days=history):
        raise SnapshotError(
            f"scoring date {day} is before the data cover {spec.name}'s {history}-day look-back: the data begin "
            f"{first}, so the earliest scoring date is {first + timedelta(days=history)}. Nothing was scored"
        )


def approved_champion(
    settings: Settings, spec: ModelSpec, source: str
) -> tuple[Champion | None, Case | None, str | None]:
    """The `champion` of `spec` with its safety case, when a safety officer approved the configuration in force
    (checked before the model is loaded, and again that the alias did not move meanwhile); else (None, case or
    None, the reason it may not score). No champion at all: (None, None, None)."""
    version = registry.alias_version(spec.name, "champion")
    if version is None:
        return None, None, None
    found = case(settings, spec.name, version, source=source)
    if not found.ok:
        return None, found, f"{spec.name} version {version} may not score: {found.problem}"
    champion = load_champion(spec.name)
    if champion is None or int(champion.version) != version:
        return None, found, f"the {spec.name} champion moved while the job started; run it again"
    return champion, found, None


def require_champion(settings: Settings, spec: ModelSpec, source: str) -> tuple[Champion, Case]:
    """The worklist model's approved champion, or `SnapshotError` naming why the job refuses to run."""
    champion, found, refused = approved_champion(settings, spec, source)
    if refused:
        raise SnapshotError(refused)
    if champion is None:
        raise SnapshotError(f"no {spec.name} champion: audit, approve and `phm models promote` a version first")
    return champion, found


def check_features(found: Case, manifest: dict) -> None:
    """Scoring check: the features just built compute what the approved configuration says (`definition_hash`)."""
    approved = found.current.feature_hash
    if manifest["definition_hash"] != approved:
        raise SnapshotError(
            f"{found.model} version {found.version}: the features built compute "
            f"{manifest['definition_hash']}, not the approved {approved}; nothing was scored"
        )


def approval_record(found: Case) -> dict:
    """What a snapshot records of the approval each model scored under."""
    s = found.summary()
    return {
        "configuration_sha256": s["configuration_sha256"],
        "report_sha256": s["report_sha256"],
        "approved_by": s["approved_by"],
        "approved_at": s["approved_at"],
        "approval_seq": s["approval_seq"],
        "top_share": found.current.top_share,
        "data_source": found.current.data_source,
    }
