"""The fairness audit engine on synthetic score tables whose truth is known: exact point estimates,
bootstrap intervals, flags, age-sex explanations, small groups, clustering, mitigation, the report
hash and the hazard log."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame, true_positive_rate
from pydantic import ValidationError
from sklearn.metrics import roc_auc_score

from serving.governance import hazard_log
from evaluation.fairness.audit import AuditInputError, run_audit
from evaluation.fairness.config import AuditConfig
from evaluation.fairness.groups import Grouping
from evaluation.fairness.results import AuditResult
from evaluation.metrics import calibration_slope_intercept

AGES = np.array(["18-39", "40-64", "65+"])
G = [Grouping("g", "Group", "g")]


def table(n: int = 60_000, seed: int = 0, under: str | None = None, older: str | None = None) -> pd.DataFrame:
    """People in groups A (reference, 70%), B, C and a tiny D; risk rises with age. Scores are the true
    risk (calibrated), except that `under` has its risk under-predicted by 40%; `older` is older."""
    rng = np.random.default_rng(seed)
    g = rng.choice(np.array(["A", "B", "C", "D"]), n, p=[0.7, 0.17, 0.129, 0.001])
    age_idx = rng.choice(3, n, p=[0.4, 0.4, 0.2])
    if older:
        age_idx = np.where(g == older, rng.choice(3, n, p=[0.1, 0.3, 0.6]), age_idx)
    sex = rng.choice(np.array(["F", "M"]), n)
    true = 1 / (1 + np.exp(-(-3.2 + 1.2 * age_idx + rng.normal(0, 1, n))))
    y = (rng.random(n) < true).astype(int)
    p = np.where(g == under, true * 0.6, true) if under else true
    return pd.DataFrame(
        {"outcome": y, "risk": p, "g": g, "stratum": pd.Series(AGES[age_idx]) + " " + sex, "person_id": np.arange(n)}
    )


def audit(frame: pd.DataFrame, **cfg) -> AuditResult:
    config = AuditConfig(**{"bootstrap_draws": 200, "references": {"g": "A"}, **cfg})
    return run_audit(frame, G, config, {"model": "toy", "outcome": "the outcome"})


def comparison(result: AuditResult, group: str, metric: str):
    return next(c for c in result.groupings[0].comparisons if c.group == group and c.metric == metric)


def row(result: AuditResult, group: str):
    return next(r for r in result.groupings[0].groups if r.group == group)


def test_point_estimates_are_exact() -> None:
    frame = table(20_000, seed=3)
    result = audit(frame)
    t = result.population["threshold"]
    b = frame[frame.g == "B"]
    y, p, flag = b.outcome.to_numpy(), b.risk.to_numpy(), b.risk.to_numpy() >= t
    m = row(result, "B").metrics
    assert m["tpr"].value == pytest.approx(flag[y == 1].mean())
    assert m["fpr"].value == pytest.approx(flag[y == 0].mean())
    assert m["ppv"].value == pytest.approx(y[flag].mean())
    assert m["selection_rate"].value == pytest.approx(flag.mean())
    assert m["auroc"].value == pytest.approx(roc_auc_score(y, p))
    assert m["predicted_to_observed"].value == pytest.approx(p.mean() / y.mean())
    assert m["calibration_slope"].value == pytest.approx(calibration_slope_intercept(y, p)[0])
    fl = MetricFrame(
        metrics=true_positive_rate, y_true=frame.outcome, y_pred=frame.risk >= t, sensitive_features=frame.g
    )
    assert m["tpr"].value == pytest.approx(fl.by_group["B"])
    # top-5% policy: the threshold flags 5% of everyone
    assert (frame.risk >= t).mean() == pytest.approx(0.05, abs=0.001)
    for v in m.values():  # every interval brackets its estimate
        if v.ci[0] is not None:
            assert v.ci[0] <= v.value + 1e-9 and v.value <= v.ci[1] + 1e-9


def test_under_predicted_group_is_flagged_in_words() -> None:
    result = audit(table(under="B"))
    flagged = {(f.group, f.metric) for f in result.flags}
    assert ("B", "tpr") in flagged and ("B", "predicted_to_observed") in flagged
    assert not any(f.group in ("C", "D") for f in result.flags)
    tpr = comparison(result, "B", "tpr")
    assert tpr.ratio < 0.8 and tpr.ratio_ci[1] < 1 and tpr.adjusted_ratio < 0.8
    text = " ".join(result.summary)
    assert "**B**" in text and "under-predicts" in text and "less likely to be offered" in text
    assert not result.passed and result.hazards[0].flags and "B" in result.hazards[0].hazard
    assert result.hazards[0].severity == "Significant" and 1 <= result.hazards[0].risk_rating <= 5


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_calibrated_scores_raise_no_false_alarm(seed: int) -> None:
    result = audit(table(seed=seed))
    assert result.flags == [] and result.passed
    assert "the audit passed" in " ".join(result.summary)


def test_a_gap_explained_by_age_is_not_flagged() -> None:
    result = audit(table(older="B"))
    tpr = comparison(result, "B", "tpr")
    assert tpr.ratio > 1.25 and tpr.ratio_ci[0] > 1  # raw gap: B is older, so more of it is flagged
    assert 0.8 <= tpr.adjusted_ratio <= 1.25
    assert tpr.status == "explained by age and sex"
    assert result.flags == []


def test_small_groups_are_marked_never_dropped() -> None:
    result = audit(table())
    d = row(result, "D")
    assert d.small and d.n > 0
    assert {
        c.status
        for c in result.groupings[0].comparisons
        if c.group == "D" and c.metric in ("tpr", "predicted_to_observed")
    } == {"small group"}
    assert "D" in " ".join(result.summary)


def test_bootstrap_intervals_agree_with_fairlearn() -> None:
    frame = table(8_000, seed=5)
    result = audit(frame, bootstrap_draws=400)
    t = result.population["threshold"]
    ours = row(result, "A").metrics["tpr"].ci
    fl = MetricFrame(
        metrics=true_positive_rate,
        y_true=frame.outcome.to_numpy(),
        y_pred=(frame.risk >= t).to_numpy(),
        sensitive_features=frame.g.to_numpy(),
        n_boot=200,
        ci_quantiles=[0.025, 0.975],
        random_state=1,
    )
    theirs = (fl.by_group_ci[0]["A"], fl.by_group_ci[1]["A"])
    assert ours[0] == pytest.approx(theirs[0], abs=0.02) and ours[1] == pytest.approx(theirs[1], abs=0.02)


def test_several_rows_per_person_bootstrap_by_person() -> None:
    base = table(6_000, seed=7)
    repeated = pd.concat([base] * 8, ignore_index=True)
    config = {"bootstrap_draws": 200, "references": {"g": "A"}, "min_group_size": 10}
    naive = run_audit(repeated, G, AuditConfig(**config), {"model": "toy"})
    clustered = run_audit(repeated, G, AuditConfig(**config), {"model": "toy"}, cluster="person_id")
    width = lambda r: np.subtract(*reversed(row(r, "A").metrics["tpr"].ci))  # noqa: E731
    assert width(clustered) > 2 * width(naive)  # ~sqrt(8) wider: the rows are not independent people
    assert clustered.population["people"] == 6_000 and clustered.population["rows"] == 48_000
    assert row(clustered, "A").people < row(clustered, "A").n


def test_mitigation_is_shown_side_by_side_and_moves_towards_parity() -> None:
    result = audit(table(under="B"), mitigation="group_thresholds", mitigation_grouping="g")
    mit = result.mitigation
    b = next(r for r in mit.rows if r.group == "B")
    target = mit.overall_before["tpr"]
    assert abs(b.after["tpr"] - target) < abs(b.before["tpr"] - target)
    assert b.threshold_after < b.threshold_before
    assert any("unchanged" in n for n in mit.notes)
    assert result.flags  # the audit itself still reports the unmitigated model


def test_report_hash_seals_the_content() -> None:
    result = audit(table(5_000))
    again = AuditResult.model_validate_json(result.model_dump_json())
    assert again.content_hash() == result.report_sha256
    altered = again.model_copy(update={"summary": ["nothing to see"]})
    assert altered.content_hash() != result.report_sha256


def test_clear_errors_for_bad_input_and_config() -> None:
    frame = table(2_000)
    with pytest.raises(AuditInputError, match="missing column.*'ethnicity'"):
        run_audit(frame, [Grouping("e", "E", "ethnicity")], AuditConfig(), {})
    with pytest.raises(AuditInputError, match="both 0s and 1s"):
        run_audit(frame.assign(outcome=0), G, AuditConfig(), {})
    with pytest.raises(ValidationError, match="tolerance"):
        AuditConfig(tolerance=(1.2, 0.8))
    with pytest.raises(ValidationError, match="unknown flag metrics"):
        AuditConfig(flag_metrics=["accuracy"])


def test_scores_that_are_not_probabilities_are_audited_without_calibration() -> None:
    frame = table(20_000, under="B").assign(risk=lambda d: d.risk * 100)
    result = audit(frame)
    assert result.population["scores_are_probabilities"] is False
    assert {f.metric for f in result.flags} == {"tpr"}
    assert "predicted_to_observed" not in row(result, "B").metrics


def test_hazard_log_is_append_only_and_tamper_evident(tmp_path) -> None:
    log = tmp_path / "safety" / "hazard_log.jsonl"
    first = hazard_log.append(log, "hazard", hazard_id="H-1", hazard="under-identifies group B")
    before = log.read_bytes()
    hazard_log.append(log, "decision", decision="approved", by="Dr A", reason="controls in place")
    assert log.read_bytes().startswith(before)  # appending never rewrites earlier entries
    entries = hazard_log.read(log)
    assert [e["seq"] for e in entries] == [1, 2] and entries[1]["prev_sha256"] == first["entry_sha256"]
    assert hazard_log.verify(log) == []
    lines = log.read_text().splitlines()
    edited = json.loads(lines[0])
    edited["hazard"] = "nothing wrong"
    log.write_text(json.dumps(edited) + "\n" + lines[1] + "\n")
    assert any("edited" in p for p in hazard_log.verify(log))
    with pytest.raises(hazard_log.HazardLogError, match="altered"):
        hazard_log.append(log, "decision", decision="approved", by="Dr B", reason="")
    log.write_text(lines[1] + "\n")  # the first entry deleted
    assert any("removed" in p or "chain" in p for p in hazard_log.verify(log))
