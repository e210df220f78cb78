"""The safety case as the hazard log records it (`serving.governance.safety_case.evaluate`, a pure function), the
configuration an approval covers and how two configurations differ, the operating policy, and the feature hash
(computation only). The real CLI, registry and service are exercised in tests/integration/test_signoff.py and
tests/e2e/test_safety_case_service.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.definitions.model import EventFeature, FeatureSet
from models import specs
from models.specs.policy import PolicyError, resolve
from phm.core.settings import OperatingPolicy, Settings
from serving.governance.configuration import current, differences
from serving.governance.safety_case import evaluate

MODEL = specs.worklist().name
COLUMN = specs.columns()[0].name
R1, R2 = "a" * 64, "b" * 64


def settings(tmp_path: Path, **policy) -> Settings:
    return Settings(home=tmp_path, policy={k: OperatingPolicy(**v) for k, v in policy.items()})


def config(tmp_path: Path, source: str = "synthetic ICS", **policy):
    fs = specs.get(MODEL).features
    return current(settings(tmp_path, **policy), MODEL, 1, fs.definition_hash(), source=source)


class Log:
    """Hazard log entries as `hazard_log.append` writes them (oldest first)."""

    def __init__(self) -> None:
        self.entries: list[dict] = []

    def add(self, kind: str, **fields) -> dict:
        entry = {
            "seq": len(self.entries) + 1,
            "at": f"2025-01-{len(self.entries) + 1:02d}T09:00:00+00:00",
            "kind": kind,
            "model": MODEL,
            "version": 1,
            **fields,
        }
        self.entries.append(entry)
        return entry

    def audit(self, report: str, flags: int = 0) -> None:
        self.add("audit", report_sha256=report, outcome="passed" if not flags else f"flagged ({flags})", flags=flags)

    def decide(self, report: str, decision: str, by: str, cfg=None) -> None:
        self.add(
            "decision",
            report_sha256=report,
            decision=decision,
            by=by,
            reason="read the report",
            configuration=cfg.model_dump(mode="json") if cfg else None,
            configuration_sha256=cfg.fingerprint() if cfg else None,
        )

    def review(self, report: str, decision: str, by: str, cfg) -> None:
        self.add(
            "change_review",
            report_sha256=report,
            decision=decision,
            by=by,
            reason="impact reviewed",
            configuration=cfg.model_dump(mode="json"),
            configuration_sha256=cfg.fingerprint(),
        )


def test_an_unflagged_audit_still_needs_a_named_approval(tmp_path: Path) -> None:
    now, log = config(tmp_path), Log()
    assert "has not been audited" in evaluate(log.entries, MODEL, 1, None, 0, now).problem
    log.audit(R1)
    case = evaluate(log.entries, MODEL, 1, R1, 0, now)
    assert not case.ok and "passed its audit, but no clinical safety officer has approved" in case.problem
    log.decide(R1, "approved", "Dr Ada Jones", now)
    case = evaluate(log.entries, MODEL, 1, R1, 0, now)
    assert case.ok and case.approved_by["by"] == "Dr Ada Jones" and case.differences == []


def test_a_rejection_is_final_for_its_report_and_a_new_audit_reopens(tmp_path: Path) -> None:
    now, log = config(tmp_path), Log()
    log.audit(R1, flags=2)
    log.decide(R1, "rejected", "Dr Sam Patel", now)
    log.decide(R1, "approved", "Dr Ada Jones", now)  # the old gate read only this latest decision
    case = evaluate(log.entries, MODEL, 1, R1, 2, now)
    assert not case.ok and "rejected by Dr Sam Patel" in case.problem and "final" in case.problem
    log.audit(R2, flags=2)  # a new audit writes a new report: the decision is open again
    case = evaluate(log.entries, MODEL, 1, R2, 2, now)
    assert not case.ok and "earlier report" in case.problem and case.rejection is None
    log.decide(R2, "approved", "Dr Ada Jones", now)
    assert evaluate(log.entries, MODEL, 1, R2, 2, now).ok


def test_the_registry_and_the_log_must_agree(tmp_path: Path) -> None:
    now, log = config(tmp_path), Log()
    log.audit(R1)
    log.decide(R1, "approved", "Dr Ada Jones", now)
    case = evaluate(log.entries, MODEL, 1, R2, 0, now)  # registry tag edited to another report
    assert not case.ok and case.record_problem and "does not record it" in case.problem
    assert not evaluate([], MODEL, 1, R1, 0, now).ok  # a deleted hazard log approves nothing


def test_a_changed_configuration_needs_a_change_review(tmp_path: Path) -> None:
    approved, log = config(tmp_path), Log()
    log.audit(R1)
    log.decide(R1, "approved", "Dr Ada Jones", approved)
    bands = config(tmp_path, **{MODEL: {"bands": {"very high": 0.005, "high": 0.02, "raised": 0.1}}})
    case = evaluate(log.entries, MODEL, 1, R1, 0, bands)
    assert not case.ok and case.differences == [
        "band cut-offs: raised top 5% → 10%",
        "operating policy: acts on the top 5% → the top 10%",
    ]
    assert "a clinical safety officer must approve the change" in case.problem and "approve-change" in case.problem
    log.review(R1, "rejected", "Dr Sam Patel", bands)
    case = evaluate(log.entries, MODEL, 1, R1, 0, bands)
    assert not case.ok and "this change was rejected by Dr Sam Patel" in case.problem
    assert evaluate(log.entries, MODEL, 1, R1, 0, approved).ok  # restoring the approved configuration
    policy = config(tmp_path, **{MODEL: {"top_share": 0.02}})
    log.review(R1, "approved", "Dr Ada Jones", policy)
    assert evaluate(log.entries, MODEL, 1, R1, 0, policy).ok
    assert evaluate(log.entries, MODEL, 1, R1, 0, approved).differences == [
        "operating policy: acts on the top 2% → the top 5%"
    ]  # going back is a change too


def test_an_approval_from_before_configurations_covers_none(tmp_path: Path) -> None:
    now, log = config(tmp_path), Log()
    log.audit(R1)
    log.decide(R1, "approved", "Dr Ada Jones", None)
    case = evaluate(log.entries, MODEL, 1, R1, 0, now)
    assert not case.ok and "recorded no configuration" in case.differences[0]
    log.review(R1, "approved", "Dr Ada Jones", now)
    assert evaluate(log.entries, MODEL, 1, R1, 0, now).ok


def test_differences_name_features_population_and_data_source(tmp_path: Path) -> None:
    a = config(tmp_path)
    features = dict(a.features)
    first, last = list(features)[:2]
    features[first] = "0" * 16
    del features[last]
    b = a.model_copy(
        update={
            "features": {**features, "new_feature": "1" * 16},
            "feature_hash": "f" * 16,
            "cohort": {**a.cohort, "min_age": 16},
            "data_source": "OMOP CDM extract",
        }
    )
    text = differences(a, b)
    assert (
        text[0] == f"feature definitions ({a.feature_hash} → {'f' * 16}): changed {first}; added new_feature; "
        f"removed {last}"
    )
    assert text[1] == "population: min_age 18 → 16" and text[2] == "data source: synthetic ICS → OMOP CDM extract"
    assert differences(a, config(tmp_path)) == [] and a.fingerprint() == config(tmp_path).fingerprint()


def test_feature_hash_covers_computation_not_words() -> None:
    fs = specs.get(MODEL).features
    reworded = FeatureSet(
        name=fs.name,
        description="other words",
        features=[
            f.model_copy(update={"description": f.description + " (reworded)", "family": "renamed family"})
            for f in fs.features
        ],
        carried=fs.carried,
    )
    assert reworded.definition_hash() == fs.definition_hash()
    event = next(i for i, f in enumerate(fs.features) if isinstance(f, EventFeature) and f.window_days)
    changed = list(fs.features)
    changed[event] = changed[event].model_copy(update={"window_days": changed[event].window_days + 1})
    assert (
        FeatureSet(name=fs.name, description=fs.description, features=changed, carried=fs.carried).definition_hash()
        != fs.definition_hash()
    )


def test_operating_policy_defaults_and_overrides(tmp_path: Path) -> None:
    default = resolve(settings(tmp_path), MODEL)
    assert default.bands == specs.get(MODEL).daily.bands and default.top_share == default.bands[-1][1]
    assert (
        resolve(settings(tmp_path), COLUMN).top_share == specs.get(COLUMN).daily.top_share
        and not resolve(settings(tmp_path), COLUMN).bands
    )
    names = [n for n, _ in specs.get(MODEL).daily.bands]
    custom = resolve(
        settings(tmp_path, **{MODEL: {"bands": dict(zip(names, (0.01, 0.03, 0.08))), "top_share": 0.03}}), MODEL
    )
    assert custom.bands == tuple(zip(names, (0.01, 0.03, 0.08))) and custom.top_share == 0.03
    with pytest.raises(PolicyError, match="name the bands"):
        resolve(settings(tmp_path, **{MODEL: {"bands": {"top": 0.01, "middle": 0.03, "raised": 0.08}}}), MODEL)
    with pytest.raises(PolicyError, match="reaches beyond the last band"):
        resolve(settings(tmp_path, **{MODEL: {"top_share": 0.2}}), MODEL)
    with pytest.raises(PolicyError, match="has no worklist bands"):
        resolve(settings(tmp_path, **{COLUMN: {"bands": {"a": 0.1}}}), COLUMN)
    with pytest.raises(PolicyError, match=f"unknown model \\(did you mean policy.{MODEL}\\?\\)"):
        resolve(settings(tmp_path, **{MODEL[:-1]: {"top_share": 0.05}}), MODEL)
