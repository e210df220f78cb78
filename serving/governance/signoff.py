"""Clinical safety sign-off: approve or reject an audited model version, and the promotion gate.

A decision is recorded on the MLflow model version (who, when, why, which report hash) and appended
to the hazard log. `champion` moves only to a version whose current audit passed, or whose flags an
approving safety officer explicitly accepted for that very report; never to an unaudited or rejected one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from serving.governance import hazard_log
from serving.governance.model_audit import hazard_log_path
from phm.core.settings import Settings
from training import registry, tracking

Decision = Literal["approved", "rejected"]


class SignoffError(ValueError):
    """A decision or promotion that the safety rules refuse (the message says why)."""


@dataclass
class Gate:
    allowed: bool
    reason: str


def _tags(name: str, version: int) -> dict[str, str]:
    try:
        return dict(MlflowClient().get_model_version(name, str(version)).tags or {})
    except MlflowException as exc:
        raise SignoffError(f"model {name!r} has no version {version}; see `phm models list`") from exc


def decide(settings: Settings, name: str, version: int, decision: Decision, by: str, reason: str,
           accept_flags: bool = False) -> dict:
    """Record a safety officer's decision on the version's current audit report."""
    tracking.configure(settings)
    tags = _tags(name, version)
    if not by.strip() or not reason.strip():
        raise SignoffError("a decision needs the safety officer's name (--by) and a reason (--reason)")
    report = tags.get("audit_report_sha256")
    if not report:
        raise SignoffError(f"{name} version {version} has not been audited: run "
                           f"`phm audit run --model {name} --version {version}` and read the report first")
    flags = int(tags.get("audit_flags", "0"))
    if decision == "approved" and flags and not accept_flags:
        raise SignoffError(f"the audit of {name} version {version} raised {flags} flag(s); approving means accepting "
                           "them with controls: read the report, then repeat with --accept-flags")
    at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    record = {"audit_status": decision, "decision": decision, "decision_by": by.strip(), "decision_at": at,
              "decision_reason": reason.strip(), "decision_report_sha256": report,
              "decision_accepted_flags": str(flags if decision == "approved" else 0)}
    client = MlflowClient()
    for key, value in record.items():
        client.set_model_version_tag(name, str(version), key, value)
    entry = hazard_log.append(hazard_log_path(settings), "decision", model=name, version=version, decision=decision,
                              by=by.strip(), reason=reason.strip(), report_sha256=report,
                              accepted_flags=flags if decision == "approved" else 0)
    return {**record, "hazard_log_seq": entry["seq"]}


def gate(name: str, version: int) -> Gate:
    """May this version become `champion`? (assumes MLflow is configured)"""
    tags = _tags(name, version)
    report = tags.get("audit_report_sha256")
    if not report:
        return Gate(False, f"{name} version {version} has not been audited; run `phm audit run --model {name} "
                    f"--version {version}`, then have a safety officer review it")
    if tags.get("decision") == "rejected":
        return Gate(False, f"{name} version {version} was rejected by {tags.get('decision_by')} on "
                    f"{tags.get('decision_at')}: {tags.get('decision_reason')}")
    flags = int(tags.get("audit_flags", "0"))
    approved_this = tags.get("decision") == "approved" and tags.get("decision_report_sha256") == report
    if tags.get("retrained") == "true" and not approved_this:  # `phm retrain`: never promoted without a person
        return Gate(False, f"{name} version {version} was retrained after monitoring; a clinical safety officer must "
                    "approve it (`phm audit approve` or the Equity page) before promotion")
    if flags == 0:
        return Gate(True, "the fairness audit passed with no flags"
                    + (f"; approved by {tags.get('decision_by')}" if approved_this else ""))
    if approved_this:
        return Gate(True, f"{flags} flag(s) accepted by {tags.get('decision_by')} on {tags.get('decision_at')}")
    if tags.get("decision") == "approved":
        return Gate(False, f"the approval of {name} version {version} was for an earlier report; the current audit "
                    f"({report[:12]}) raised {flags} flag(s) and needs a new decision")
    return Gate(False, f"the fairness audit of {name} version {version} raised {flags} flag(s) that no safety officer "
                "has accepted; see the bias report and `phm audit approve|reject`")


def promote(settings: Settings, name: str, version: int, by: str, alias: str = "champion") -> Gate:
    tracking.configure(settings)
    check = gate(name, version)
    if not check.allowed:
        raise SignoffError(f"refused to make {name} version {version} {alias}: {check.reason}")
    previous = None
    try:
        previous = int(MlflowClient().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        pass
    registry.set_alias(name, version, alias)
    client = MlflowClient()
    client.set_model_version_tag(name, str(version), "promoted_by", by)
    client.set_model_version_tag(name, str(version), "promoted_at", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    hazard_log.append(hazard_log_path(settings), "promotion", model=name, version=version, alias=alias, by=by,
                      previous_version=previous, report_sha256=_tags(name, version).get("audit_report_sha256"),
                      basis=check.reason)
    return check
