"""The fairness audit at the edges of its estimates, on tables built by hand so the right answer is known: a
group in which the policy flags nobody (every bootstrap draw is 0, so the draws cannot bound it)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evaluation.fairness.audit import run_audit
from evaluation.fairness.config import AuditConfig
from evaluation.fairness.groups import STANDARD_GROUPINGS, Grouping, standard_labels
from evaluation.fairness.results import AuditResult

G = [Grouping("g", "Group", "g", adjustable=False)]


def people(group: str, score: float, n: int, events: int) -> pd.DataFrame:
    """`n` people of `group` scored `score`, exactly `events` of whom have the outcome."""
    return pd.DataFrame({"g": group, "risk": score, "outcome": (np.arange(n) < events).astype(int)})


def audit(*parts: pd.DataFrame) -> AuditResult:
    frame = pd.concat(parts, ignore_index=True)
    cfg = AuditConfig(threshold=0.3, bootstrap_draws=200, references={"g": "A"}, need_at_equal_score=False)
    return run_audit(frame, G, cfg, {"model": "toy", "outcome": "the outcome"})


def tpr(result: AuditResult, group: str):
    return next(c for c in result.groupings[0].comparisons if c.group == group and c.metric == "tpr")


def test_a_group_whose_every_outcome_is_missed_is_flagged() -> None:
    # A: TPR 500 / 950; B: 300 people, calibrated (30 outcomes at risk 0.1), none above the threshold: TPR 0 of 30
    result = audit(people("A", 0.5, 1000, 500), people("A", 0.05, 9000, 450), people("B", 0.1, 300, 30))
    c = tpr(result, "B")
    assert c.ratio == 0.0 and c.ratio_ci[1] is not None and c.ratio_ci[1] < 1
    assert c.status == "flag" and ("B", "tpr") in {(f.group, f.metric) for f in result.flags}
    assert not result.passed and result.hazards[0].likelihood == "High"  # the widest gap there is
    assert "less likely to be offered" in " ".join(result.summary)  # under-served, not over-served
    # the group's own interval: exact (Clopper-Pearson) for 0 of 30, not the bootstrap's collapsed (0, 0)
    b = next(r for r in result.groupings[0].groups if r.group == "B").metrics["tpr"]
    assert b.value == 0.0 and b.ci == (0.0, pytest.approx(1 - 0.025 ** (1 / 30)))


def test_no_one_flagged_where_parity_is_plausible_stays_uncertain() -> None:
    # A's TPR is 50 / 545 = 0.092: 0 of 30 happens by chance with probability 0.055, so no flag
    result = audit(people("A", 0.5, 100, 50), people("A", 0.05, 9900, 495), people("B", 0.1, 300, 30))
    c = tpr(result, "B")
    assert c.ratio == 0.0 and c.ratio_ci[1] > 1
    assert c.status == "uncertain" and result.flags == []


def test_a_small_stated_reference_is_no_yardstick() -> None:
    # the stated reference A has 60 people, all 20 with the outcome flagged (TPR 1 in every bootstrap draw);
    # B and C are alike (TPR 250 / 700): judged against A both were flagged, with intervals far too narrow
    result = audit(
        people("A", 0.9, 20, 20),
        people("A", 0.05, 40, 0),
        people("B", 0.5, 500, 250),
        people("B", 0.1, 4500, 450),
        people("C", 0.5, 300, 150),
        people("C", 0.1, 2700, 270),
    )
    g = result.groupings[0]
    assert g.reference == "B" and "A is small" in g.reference_note and g.reference_note in " ".join(result.summary)
    assert tpr(result, "C").ratio == pytest.approx(1.0) and tpr(result, "A").status == "small group"
    assert result.flags == [] and result.passed


def test_an_audit_that_judged_nothing_does_not_say_it_passed() -> None:
    # everyone in one group (ethnicity all 'not stated', say): nothing compared, nothing flagged
    one = audit(people("A", 0.5, 1000, 500), people("A", 0.05, 9000, 450))
    text = " ".join(one.summary)
    assert one.flags == [] and "the audit passed" not in text and "no evidence that the score is fair" in text
    assert "Group: nothing could be judged (everyone is in one group, A)" in text
    # no metric judged: the same
    frame = pd.concat([people("A", 0.5, 1000, 500), people("A", 0.05, 9000, 450), people("B", 0.1, 3000, 300)])
    cfg = AuditConfig(threshold=0.3, bootstrap_draws=50, flag_metrics=[], need_at_equal_score=False)
    none = run_audit(frame, G, cfg, {"model": "toy"})
    assert "the audit passed" not in " ".join(none.summary) and "no metric is judged" in " ".join(none.summary)
    # something judged: it passed
    fair = audit(*(people(g, 0.5, n // 10, n // 20) for g, n in (("A", 10_000), ("B", 1000))),
                 *(people(g, 0.05, n * 9 // 10, n * 9 // 200) for g, n in (("A", 10_000), ("B", 1000))))  # fmt: skip
    assert "the audit passed" in " ".join(fair.summary) and "nothing could be judged" not in " ".join(fair.summary)
    from phm.cli.audit import verdict  # the command's status line says the same (it had said "passed")

    assert "nothing could be judged" in verdict(one) and "passed" not in verdict(none)
    assert verdict(fair) == "[green]passed[/]"


def test_performance_for_everyone_is_resampled_by_person() -> None:
    # 2,000 people with 20 identical rows each (person-days) carry the information of 2,000 people, not 40,000:
    # the intervals for everyone must be as wide as those of the same people with one row each
    rng = np.random.default_rng(5)
    risk = rng.beta(1.5, 8, 2000)
    once = pd.DataFrame({"g": "A", "risk": risk, "outcome": (rng.random(2000) < risk).astype(int)})
    once["person_id"] = np.arange(2000)
    days = once.loc[once.index.repeat(20)].reset_index(drop=True)
    cfg = AuditConfig(bootstrap_draws=400, need_at_equal_score=False)

    def width(frame: pd.DataFrame, metric: str) -> float:
        lo, hi = run_audit(frame, G, cfg, {"model": "toy"}, cluster="person_id").absolute.metrics[metric].ci
        return hi - lo

    for metric in ("observed_to_expected", "calibration_slope", "auroc"):
        assert 0.8 < width(days, metric) / width(once, metric) < 1.25, metric


def test_a_standard_group_absent_from_the_data_is_named_not_silently_missing() -> None:
    # validation data with no Black people (the group dropped upstream) and no one in the least deprived quintile
    rng = np.random.default_rng(2)
    n = 6000
    risk = rng.beta(1.5, 8, n)
    frame = pd.DataFrame(
        {
            "outcome": (rng.random(n) < risk).astype(int),
            "risk": risk,
            "ethnic_category": rng.choice(["A", "B", "D", "H", "J", "R", "Z", "99"], n),
            "imd_decile": rng.choice(np.arange(1, 9), n),
            "sex": rng.choice(["F", "M"], n),
            "age": 50,
            "age_band": rng.choice(["18-39", "40-64", "65+"], n),
        }
    )
    cfg = AuditConfig(bootstrap_draws=50, need_at_equal_score=False)
    result = run_audit(standard_labels(frame), STANDARD_GROUPINGS, cfg, {"model": "toy"})
    by = {g.name: g for g in result.groupings}
    assert by["ethnicity_broad"].absent == ["Black"] and by["imd_quintile"].absent == ["Q5 (least deprived)"]
    assert by["core20"].absent == [] and "M Caribbean" in by["ethnicity"].absent
    text = " ".join(result.summary)
    assert "not assessed for them" in text and "Ethnicity (broad group): Black" in text
