"""The clinical safety hazard log: an append-only, hash-chained, signed ledger with its head anchored outside the
file (see `phm.core.ledger`), at `$PHM_HOME/safety/hazard_log.jsonl`, of the entry kinds below. It is the record the
promotion gate, the daily job and the service read to know what a clinical safety officer approved
(`serving.governance.safety_case`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from phm.core import ledger
from phm.core.ledger import adopt
from phm.core.ledger_check import Check, check, head_problems, verify
from phm.core.ledger_file import read
from phm.core.ledger_head import GENESIS, LedgerError

HazardLogError = LedgerError

if TYPE_CHECKING:
    from phm.core.settings import Settings

KINDS = {
    "hazard": "a hazard raised by an audit (DCB0129: hazard, cause, effect, controls, risk before and after)",
    "audit": "a fairness audit of a model version: its report (SHA-256) and outcome",
    "decision": "a safety officer approves or rejects the report of a version, with the configuration it covers",
    "change_review": "a safety officer's change-impact review: a changed configuration of an approved version "
    "approved or rejected, naming every difference",
    "promotion": "a version moved to an alias (`champion`) through the gate",
    "monitoring": "a monitoring alert on a deployed version",
}


def append(path: Path, kind: str, **fields) -> dict:
    """Append an entry of a known `kind` (the whole chain and its signed head are checked first)."""
    if kind not in KINDS:
        raise HazardLogError(f"unknown hazard log entry kind {kind!r}; the kinds are {', '.join(KINDS)}")
    return ledger.append(path, kind, **fields)


def hazard_log_path(settings: Settings) -> Path:
    """Where a PHM home's hazard log is."""
    return settings.home / "safety" / "hazard_log.jsonl"


__all__ = [
    "GENESIS",
    "Check",
    "HazardLogError",
    "KINDS",
    "adopt",
    "append",
    "check",
    "hazard_log_path",
    "head_problems",
    "read",
    "verify",
]
