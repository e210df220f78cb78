"""What both daily jobs share: their error, the default scoring date, and the safety check of each champion
before it scores (its approved configuration must be the configuration in force; `serving.governance.safety_case`).
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path


from features.series import data_end
from models.specs.base import ModelSpec
from phm.core.settings import Settings
from serving.governance.safety_case import Case, case
from training import registry
from training.registry import Champion, load_champion


class SnapshotError(RuntimeError):
    """No snapshot can be produced or read (no champion model, no warehouse, an unapproved configuration, ...)."""


def default_date(warehouse: Path) -> date:
    """The day after the data ends."""
    return data_end(warehouse) + timedelta(days=1)


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
