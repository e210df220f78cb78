"""Acceptance of need at equal score on 50,000-person synthetic ICSs, with and without the generator's access
barrier (one group uses hospitals half as often for the same need), through the real generator, loader, feature
build and audit.

The score audited is the generator's true probability of an emergency admission: perfectly calibrated for the
outcome in every group, the best any model of that outcome can be (Obermeyer's setting: a score calibrated for
a proxy of need). Calibration by group therefore passes, and only need at equal score can show the harm."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from evaluation.fairness import report_html
from evaluation.fairness.audit import run_audit
from evaluation.fairness.config import AuditConfig
from evaluation.fairness.groups import STANDARD_COVERAGE, STANDARD_GROUPINGS, coverage_descriptions
from evaluation.fairness.results import AuditResult
from features.sources.loader import load
from features.synthetic.config import AccessBarrierConfig, GeneratorConfig
from features.synthetic.generator import generate
from phm.core.settings import Settings
from training.oracle import oracle_audit_frame

pytestmark = pytest.mark.slow
MODEL = "emergency_admission"
VALIDATION = date(2024, 4, 1)


def audited(root: Path, barrier: AccessBarrierConfig | None) -> AuditResult:
    settings = Settings(home=root / "home")
    generate(GeneratorConfig(persons=50_000, seed=1, access_barrier=barrier), root / "ics")
    load(settings, root / "ics")
    frame = oracle_audit_frame(settings, MODEL, VALIDATION, root / "features.parquet")
    return run_audit(
        frame,
        STANDARD_GROUPINGS,
        AuditConfig(bootstrap_draws=300),
        {"model": "true risk of emergency admission", "outcome": "an emergency admission"},
        coverage=STANDARD_COVERAGE,
        coverage_descriptions=coverage_descriptions(frame, STANDARD_COVERAGE),
    )


def need_flags(result: AuditResult) -> list:
    return [f for f in result.flags if f.metric.startswith("need_")]


def test_an_access_barrier_is_found_by_need_at_equal_score_not_by_calibration(tmp_path: Path) -> None:
    result = audited(tmp_path, AccessBarrierConfig(group="Asian", factor=0.5))
    flagged = {(f.grouping, f.group, f.metric) for f in need_flags(result)}
    assert ("ethnicity_broad", "Asian", "need_gp_conditions") in flagged
    assert {g for _, g, _ in flagged} <= {"Asian", "Asian, Core20", "Asian, rest of population"}
    c = next(f for f in need_flags(result) if f.grouping == "ethnicity_broad" and f.metric == "need_gp_conditions")
    assert c.ratio > 1.25 and c.ratio_ci[0] > 1 and c.adjusted_ratio > 1.25
    # calibration by group alone does not catch it: the score is calibrated for the outcome in every group
    calibration = [
        x
        for g in result.groupings
        if g.name == "ethnicity_broad"
        for x in g.comparisons
        if x.group == "Asian" and x.metric in ("predicted_to_observed", "calibration_slope")
    ]
    assert calibration and all(x.status != "flag" for x in calibration)
    assert not [f for f in result.flags if f.group == "Asian" and not f.metric.startswith("need_")]
    # the report explains it
    words = " ".join(result.summary)
    assert "**Asian**: at the same risk score" in words and "access barrier" in words
    hazard = next(h for h in result.hazards if "Asian" in h.hazard and "need_gp_conditions" in " ".join(h.flags))
    assert "under-identifies" in hazard.hazard and "Sicker at the same score" in hazard.cause
    html = report_html.render(result)
    assert "Need at equal score" in html and "Asian" in html


def test_without_the_barrier_no_group_is_sicker_at_equal_score(tmp_path: Path) -> None:
    result = audited(tmp_path, None)
    assert need_flags(result) == []
    assert any(n.name == "ethnicity_broad" and n.comparisons for n in result.need)
    assert any(n.name == "thin_record" for n in result.need)
