"""The safety case of a model version, kept current: what a clinical safety officer approved, read from the
hazard log, against the configuration the version would run under now.

A version may be promoted, scored by the daily job or used by the service only when

1. its current audit report (the registry's `audit_report_sha256`) is the last audit the hazard log records for
   it (an edited registry or a deleted log refuses everything: fail closed);
2. a named safety officer approved that exact report and nobody rejected it (a rejection is final for the
   report; only a new audit, which writes a new report, reopens the decision);
3. the configuration in force (`serving.governance.configuration`) is the one approved with the report, or one a
   safety officer approved since in a change-impact review (`review_change`), and was not rejected.

`evaluate` derives this from the log's entries (a pure function); `case` reads the registry, the hazard log and
the installation; `require` raises `SafetyCaseError` naming every difference; `review_change` records a safety
officer's change-impact review in the hazard log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from models import specs
from phm.core.settings import Settings
from serving.governance import hazard_log
from serving.governance.configuration import Configuration, current, differences

Decision = Literal["approved", "rejected"]


class SafetyCaseError(ValueError):
    """A decision, a change review or a use of a model that the safety case refuses (the message says why)."""


@dataclass
class Case:
    """The state of one version's safety case. `problem` is None exactly when the version may be used."""

    model: str
    version: int
    report: str | None
    flags: int
    current: Configuration
    problem: str | None = None
    record_problem: bool = False  # the registry, the log or the report cannot be trusted (nothing may be decided)
    rejection: dict | None = None  # the decision that rejected the current report
    approval: dict | None = None  # the decision that approved the current report
    approved: Configuration | None = None  # the configuration approved last (report approval or change review)
    approved_by: dict | None = None  # the hazard log entry that approved it
    rejected_changes: dict[str, dict] = field(default_factory=dict)  # configuration fingerprint -> rejecting entry
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def reason(self) -> str:
        if self.problem:
            return self.problem
        who = self.approved_by or {}
        return (
            f"{self.model} version {self.version} runs under the configuration approved by {who.get('by')} on "
            f"{who.get('at')} (report {str(self.report)[:12]}, configuration {self.current.fingerprint()[:12]})"
        )

    def summary(self) -> dict:
        """For snapshots, pages and `phm audit status`."""
        who = self.approved_by or {}
        return {
            "model": self.model,
            "version": self.version,
            "ok": self.ok,
            "reason": self.reason,
            "report_sha256": self.report,
            "flags": self.flags,
            "differences": self.differences,
            "configuration_sha256": self.current.fingerprint(),
            "configuration": self.current.model_dump(mode="json"),
            "approved_by": who.get("by"),
            "approved_at": who.get("at"),
            "approval_seq": who.get("seq"),
            "approved_configuration_sha256": self.approved.fingerprint() if self.approved else None,
        }


def _who(entry: dict) -> str:
    return f"{entry.get('by')} on {entry.get('at')}"


def evaluate(
    entries: list[dict],
    name: str,
    version: int,
    report: str | None,
    flags: int,
    now: Configuration,
    model_sha256: str | None = None,
) -> Case:
    """The safety case of `name` version `version` from the hazard log's entries (oldest first), the registry's
    current report and flag count, and the configuration in force now; with `model_sha256` (the digest of the
    version's model files now), also whether those are the files its latest audit examined."""
    c = Case(name, int(version), report, int(flags), now)
    cli = specs.get(name).cli_name
    mine = [e for e in entries if e.get("model") == name and e.get("version") == int(version)]
    if not report:
        c.problem = (
            f"{name} version {version} has not been audited: run `phm audit run --model {cli} --version "
            f"{version}`; then a clinical safety officer must approve its report"
        )
        return c
    audits = [e for e in mine if e.get("kind") == "audit"]
    if not audits or audits[-1].get("report_sha256") != report:
        c.record_problem = True
        c.problem = (
            f"the registry says the current report of {name} version {version} is {report[:12]}, but the "
            "hazard log does not record it as the version's latest audit (the log was replaced or the "
            f"registry edited): run `phm audit run --model {cli} --version {version}` again"
        )
        return c
    if model_sha256 is not None and audits[-1].get("model_sha256") != model_sha256:
        c.record_problem = True
        c.problem = (
            f"the model files of {name} version {version} are not the ones its latest audit ({report[:12]}) "
            "examined (they were replaced in the registry, or the audit predates recording them): nothing "
            "approved covers them; restore the files, or, if they are the ones its training run logged, run "
            f"`phm audit run --model {cli} --version {version}` again (else train a new version), then a "
            "clinical safety officer must decide on the new report"
        )
        return c
    on_report = [e for e in mine if e.get("report_sha256") == report and e.get("kind") in ("decision", "change_review")]
    decisions = [e for e in on_report if e.get("kind") == "decision"]
    c.rejection = next((e for e in decisions if e.get("decision") == "rejected"), None)
    c.approval = next((e for e in decisions if e.get("decision") == "approved"), None)
    if c.rejection is not None:
        c.problem = (
            f"{name} version {version} was rejected by {_who(c.rejection)}: {c.rejection.get('reason')} "
            "(a rejection is final for that report; only a new audit reopens the decision)"
        )
        return c
    if c.approval is None:
        earlier = [e for e in mine if e.get("kind") == "decision" and e.get("decision") == "approved"]
        if earlier:
            c.problem = (
                f"the approval of {name} version {version} was for an earlier report; the current audit "
                f"({report[:12]}) needs a new decision: a clinical safety officer must approve it"
            )
        elif flags:
            c.problem = (
                f"the fairness audit of {name} version {version} raised {flags} flag(s) that no safety "
                "officer has accepted; a clinical safety officer must approve it (`phm audit approve "
                "--accept-flags`, or the Equity page) after reading the bias report, or reject it"
            )
        else:
            c.problem = (
                f"{name} version {version} passed its audit, but no clinical safety officer has approved its "
                "report; a clinical safety officer must approve it (`phm audit approve`, or the Equity page) "
                "before it is used"
            )
        return c
    for e in on_report:
        if e.get("decision") != "approved" and e.get("kind") == "change_review":
            c.rejected_changes[e.get("configuration_sha256", "")] = e
        elif e.get("decision") == "approved":
            recorded = e.get("configuration")
            c.approved = Configuration.model_validate(recorded) if recorded else None
            c.approved_by = e
    if c.approved is None:
        c.differences = ["the approval recorded no configuration (it was made before approvals covered one)"]
    else:
        c.differences = differences(c.approved, now)
    if c.differences:
        rejected = c.rejected_changes.get(now.fingerprint())
        what = "; ".join(c.differences)
        if rejected is not None:
            c.problem = (
                f"the configuration of {name} version {version} differs from the approved one ({what}), and "
                f"this change was rejected by {_who(rejected)}: {rejected.get('reason')}. Restore the approved "
                "configuration, or audit the version again"
            )
        else:
            c.problem = (
                f"the configuration of {name} version {version} changed since {_who(c.approved_by)} approved it "
                f"({what}); a clinical safety officer must approve the change (`phm audit approve-change "
                f"--model {cli} --version {version}`, or the Equity page) before it is used"
            )
    return c


def _entries(settings: Settings) -> tuple[list[dict], str | None]:
    from serving.governance.hazard_log import hazard_log_path

    path = hazard_log_path(settings)
    problems = hazard_log.verify(path)
    if problems:
        return [], (
            f"the hazard log {path} has been altered ({'; '.join(problems[:2])}): no approval in it can be "
            "trusted, so no model may be promoted or used until it is restored"
        )
    return hazard_log.read(path), None


def version_tags(name: str, version: int) -> dict[str, str]:
    """The registry's tags of a version (MLflow must be configured)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return dict(MlflowClient().get_model_version(name, str(version)).tags or {})
    except MlflowException as exc:
        raise SafetyCaseError(f"model {name!r} has no version {version}; see `phm models list`") from exc


def case(
    settings: Settings, name: str, version: int, tags: dict[str, str] | None = None, source: str | None = None
) -> Case:
    """The safety case of a version as it stands (MLflow must be configured; `source`: the data source, when the
    caller has read it already)."""
    from mlflow.exceptions import MlflowException

    from models.specs.policy import PolicyError

    tags = version_tags(name, version) if tags is None else tags
    try:
        now = current(settings, name, version, tags.get("feature_hash"), source)
    except PolicyError as exc:
        raise SafetyCaseError(f"the operating policy cannot apply ({exc}): fix phm.toml") from exc
    report, flags = tags.get("audit_report_sha256"), int(tags.get("audit_flags", "0") or 0)

    def refused(problem: str) -> Case:
        return Case(name, int(version), report, flags, now, problem=problem, record_problem=True)

    entries, broken = _entries(settings)
    if broken:
        return refused(broken)
    from training.registry import files_sha256

    try:
        model_sha256 = files_sha256(name, version)
    except (OSError, MlflowException) as exc:
        return refused(f"the model files of {name} version {version} cannot be read ({exc}): it may not be used")
    return evaluate(entries, name, version, report, flags, now, model_sha256)


def require(settings: Settings, name: str, version: int, source: str | None = None) -> Case:
    """The version's safety case, or `SafetyCaseError` saying why it may not be used now."""
    c = case(settings, name, version, source=source)
    if not c.ok:
        raise SafetyCaseError(c.problem)
    return c


def review_change(
    settings: Settings,
    name: str,
    version: int,
    decision: Decision,
    by: str,
    reason: str,
    expected: str | None = None,
    via: str = "cli",
) -> dict:
    """A safety officer's change-impact review: approve (or reject) the configuration in force now for a version
    whose report they approved, recorded in the hazard log with every difference. `expected`: the fingerprint (or
    its start) of the configuration the officer reviewed; refused if it has changed again since."""
    from mlflow import MlflowClient

    from serving.governance.hazard_log import hazard_log_path
    from training import tracking

    tracking.configure(settings)
    if not by.strip() or not reason.strip():
        raise SafetyCaseError("a change review needs the safety officer's name (--by) and a reason (--reason)")
    c = case(settings, name, version)
    if c.record_problem or c.approval is None or c.rejection is not None:
        raise SafetyCaseError(f"{c.problem} (a change review applies to a version whose current report is approved)")
    if not c.differences:
        raise SafetyCaseError(
            f"{name} version {version} runs under its approved configuration "
            f"({c.current.fingerprint()[:12]}): there is no change to review"
        )
    sha = c.current.fingerprint()
    if expected is not None and (len(expected) < 8 or not sha.startswith(expected)):
        raise SafetyCaseError(
            f"the configuration of {name} version {version} changed again since it was reviewed "
            f"(now {sha[:12]}, reviewed {expected[:12]}): review the differences again"
        )
    if decision == "approved" and sha in c.rejected_changes:
        rejected = c.rejected_changes[sha]
        raise SafetyCaseError(
            f"this configuration of {name} version {version} was rejected by {_who(rejected)}: "
            f"{rejected.get('reason')} (a rejection is final; restore the approved configuration "
            "or audit the version again)"
        )
    entry = hazard_log.append(
        hazard_log_path(settings),
        "change_review",
        model=name,
        version=int(version),
        report_sha256=c.report,
        decision=decision,
        by=by.strip(),
        reason=reason.strip(),
        via=via,
        differences=c.differences,
        from_configuration_sha256=c.approved.fingerprint() if c.approved else None,
        configuration=c.current.model_dump(mode="json"),
        configuration_sha256=sha,
    )
    if decision == "approved":
        client = MlflowClient()
        for key, value in {
            "configuration_sha256": sha,
            "configuration_approved_by": by.strip(),
            "configuration_approved_at": entry["at"],
        }.items():
            client.set_model_version_tag(name, str(version), key, value)
    return entry
