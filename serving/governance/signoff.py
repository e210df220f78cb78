"""Clinical safety sign-off: a named safety officer approves or rejects the exact audit report of a model
version, and the promotion gate.

A decision is one record, whoever makes it and however (`phm audit approve|reject`, the Equity page's form, the
API): the hazard log entry (who, when, why, which report, which flags were accepted, the configuration it
covers, by which route) and the same facts as tags on the MLflow version (for display). The gate reads the
safety case (`serving.governance.safety_case`), never the latest tag alone: every version needs an approval of
its current report, a rejection is final for that report, and the configuration in force must be the approved
one. `champion` moves only through that gate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mlflow import MlflowClient

from phm.core.settings import Settings
from serving.governance import hazard_log
from serving.governance.hazard_log import hazard_log_path
from serving.governance.model_audit import latest_report
from serving.governance.safety_case import SafetyCaseError, case, version_tags
from training import registry, tracking

Decision = Literal["approved", "rejected"]
Route = Literal["cli", "service"]


class SignoffError(SafetyCaseError):
    """A decision or promotion that the safety rules refuse (the message says why)."""


@dataclass
class Gate:
    allowed: bool
    reason: str


def _pct(share: float) -> str:
    return f"{100 * share:.4g}%"


def _operating_point(name: str, version: int, report: str, policy_share: float, data_source: str) -> None:
    """The report must have judged fairness where the model is used: at the policy's top share, on the data in
    force."""
    found = latest_report(name, version)
    if found is None or found.get("report_sha256") != report:
        raise SignoffError(
            f"the bias report {report[:12]} of {name} version {version} is not in the registry's "
            "artifacts; run the audit again"
        )
    audited_on = (found.get("subject") or {}).get("data")
    if audited_on is not None and audited_on != data_source:
        raise SignoffError(
            f"the bias report of {name} version {version} judged its scores on data from {audited_on}, but the "
            f"warehouse in force holds {data_source}: its figures describe other data; retrain on the data in "
            "force, audit the new version and approve that"
        )
    cfg = found.get("config") or {}
    if cfg.get("threshold") is not None:  # a fixed risk threshold flags another share: not the policy in force
        raise SignoffError(
            f"the report judged fairness at a fixed threshold (risk >= {cfg['threshold']:g}), but the operating "
            f"policy acts on the top {_pct(policy_share)}: audit at the policy (`phm audit run --top-share "
            f"{policy_share:g}` without a threshold)"
        )
    if cfg.get("top_share") is not None and abs(cfg["top_share"] - policy_share) > 1e-12:
        raise SignoffError(
            f"the report judged fairness at the top {_pct(cfg['top_share'])}, but the operating policy "
            f"acts on the top {_pct(policy_share)}: audit at the policy (`phm audit run --top-share "
            f"{policy_share:g}`) or change the policy first"
        )


def decide(
    settings: Settings,
    name: str,
    version: int,
    decision: Decision,
    by: str,
    reason: str,
    accept_flags: bool = False,
    report: str | None = None,
    via: Route = "cli",
) -> dict:
    """Record a safety officer's decision on the version's current audit report. `report`: the report (or the start
    of its SHA-256) the officer read; refused when a newer audit has replaced it."""
    tracking.configure(settings)
    if not by.strip() or not reason.strip():
        raise SignoffError("a decision needs the safety officer's name (--by) and a reason (--reason)")
    tags = version_tags(name, version)
    c = case(settings, name, version, tags=tags)
    current_report = c.report
    if not current_report or c.record_problem:
        raise SignoffError(c.problem or f"{name} version {version} has not been audited")
    if report is not None and (len(report) < 8 or not current_report.startswith(report.strip().lower())):
        raise SignoffError(
            f"the report you reviewed ({report[:12]}) is not the current report of {name} version "
            f"{version} ({current_report[:12]}): a newer audit replaced it; read that one and decide on it"
        )
    if c.rejection is not None:
        raise SignoffError(
            f"{name} version {version} was rejected by {c.rejection.get('by')} on "
            f"{c.rejection.get('at')} for this report ({current_report[:12]}): a rejection is final for "
            "that report; only a new audit (`phm audit run`) reopens the decision"
        )
    flags = c.flags
    if decision == "approved":
        if flags and not accept_flags:
            raise SignoffError(
                f"the audit of {name} version {version} raised {flags} flag(s); approving means "
                "accepting them with controls: read the report, then repeat with --accept-flags"
            )
        if c.current.trained_feature_hash != c.current.feature_hash:
            raise SignoffError(
                f"{name} version {version} was trained on feature definitions "
                f"{c.current.trained_feature_hash} but they now compute {c.current.feature_hash}: its "
                "report describes other features; retrain, audit the new version and approve that"
            )
        if c.approval is not None and c.differences:
            raise SignoffError(
                f"this report of {name} version {version} is already approved, and its configuration "
                f"has changed since ({'; '.join(c.differences)}): review the change with `phm audit "
                "approve-change` (or the Equity page)"
            )
        _operating_point(name, version, current_report, c.current.top_share, c.current.data_source)
    accepted = flags if decision == "approved" else 0
    config = c.current.model_dump(mode="json")
    entry = hazard_log.append(
        hazard_log_path(settings),
        "decision",
        model=name,
        version=int(version),
        decision=decision,
        by=by.strip(),
        reason=reason.strip(),
        report_sha256=current_report,
        accepted_flags=accepted,
        via=via,
        configuration=config,
        configuration_sha256=c.current.fingerprint(),
    )
    record = {
        "audit_status": decision,
        "decision": decision,
        "decision_by": by.strip(),
        "decision_at": entry["at"],
        "decision_reason": reason.strip(),
        "decision_report_sha256": current_report,
        "decision_accepted_flags": str(accepted),
        "decision_via": via,
    }
    if decision == "approved":
        record.update(
            {
                "configuration_sha256": c.current.fingerprint(),
                "configuration_approved_by": by.strip(),
                "configuration_approved_at": entry["at"],
            }
        )
    client = MlflowClient()
    for key, value in record.items():
        client.set_model_version_tag(name, str(version), key, value)
    return {**record, "hazard_log_seq": entry["seq"], "configuration_sha256": c.current.fingerprint()}


def gate(settings: Settings, name: str, version: int) -> Gate:
    """May this version become `champion` (or be used by the daily job and the service)?"""
    tracking.configure(settings)
    c = case(settings, name, version)
    return Gate(c.ok, c.reason)


def promote(settings: Settings, name: str, version: int, by: str, alias: str = "champion") -> Gate:
    """Move `alias` to a version whose current report and configuration a safety officer approved."""
    if not by or not by.strip():
        raise SignoffError("a promotion needs the name of the person promoting (--by)")
    tracking.configure(settings)
    check = gate(settings, name, version)
    if not check.allowed:
        raise SignoffError(f"refused to make {name} version {version} {alias}: {check.reason}")
    previous = registry.alias_version(name, alias)
    registry.set_alias(name, version, alias)
    entry = hazard_log.append(
        hazard_log_path(settings),
        "promotion",
        model=name,
        version=int(version),
        alias=alias,
        by=by.strip(),
        previous_version=previous,
        report_sha256=version_tags(name, version).get("audit_report_sha256"),
        basis=check.reason,
    )
    client = MlflowClient()
    client.set_model_version_tag(name, str(version), "promoted_by", by.strip())
    client.set_model_version_tag(name, str(version), "promoted_at", entry["at"])
    return check
