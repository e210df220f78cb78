"""Need at equal score on synthetic tables whose truth is known: a group that uses hospitals less for the same
need is sicker at the same score and flagged, while calibration by group passes; without the barrier, no flag."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evaluation.fairness import report_html
from evaluation.fairness.audit import run_audit
from evaluation.fairness.config import AuditConfig
from evaluation.fairness.groups import Grouping
from evaluation.fairness.need import score_deciles
from evaluation.fairness.results import AuditResult

G = [Grouping("ethnicity_broad", "Ethnicity (broad group)", "ethnicity_broad")]
AGES = np.array(["18-39", "40-64", "65+"])


def table(n: int = 40_000, seed: int = 0, barrier: float | None = None) -> pd.DataFrame:
    """Need (conditions, frailty, deaths) follows a latent severity; the outcome (admission) follows severity
    times a use factor, which is `barrier` for group "Black". The score is the true admission risk, so it is
    calibrated in every group by construction."""
    rng = np.random.default_rng(seed)
    g = rng.choice(np.array(["White", "Asian", "Black", "Mixed"]), n, p=[0.75, 0.12, 0.10, 0.03])
    age_idx = rng.choice(3, n, p=[0.4, 0.4, 0.2])
    severity = 0.8 * age_idx + rng.normal(0, 1, n)
    conditions = rng.poisson(np.exp(-0.5 + 0.6 * severity))
    frailty = rng.poisson(np.exp(-1.5 + 0.5 * severity))
    death = (rng.random(n) < 1 / (1 + np.exp(-(-4.5 + 0.8 * severity)))).astype(int)
    lin = -2.5 + 0.9 * severity + (np.log(barrier) * (g == "Black") if barrier else 0.0)
    risk = 1 / (1 + np.exp(-lin))
    y = (rng.random(n) < risk).astype(int)
    return pd.DataFrame(
        {
            "outcome": y,
            "risk": risk,
            "ethnicity_broad": g,
            "gp_coded_conditions": conditions,
            "frailty_deficits": frailty,
            "died_in_follow_up": death,
            "stratum": AGES[age_idx],
            "person_id": np.arange(n),
        }
    )


def audit(frame: pd.DataFrame, **cfg) -> AuditResult:
    return run_audit(frame, G, AuditConfig(**{"bootstrap_draws": 200, **cfg}), {"model": "toy", "outcome": "admission"})


def need(result: AuditResult, measure: str, group: str):
    block = next(n for n in result.need if n.name == "ethnicity_broad" and n.measure == measure)
    return next(c for c in block.comparisons if c.group == group)


def test_an_access_barrier_is_flagged_by_need_while_calibration_passes() -> None:
    result = audit(table(barrier=0.4))
    c = need(result, "need_gp_conditions", "Black")
    assert c.status == "flag" and c.ratio > 1.25 and c.ratio_ci[0] > 1
    assert need(result, "need_gp_conditions", "Asian").status == "within tolerance"
    calib = next(
        x for x in result.groupings[0].comparisons if x.group == "Black" and x.metric == "predicted_to_observed"
    )
    assert calib.status == "within tolerance"  # the score is the true risk of the proxy: calibration cannot see it
    assert {(f.grouping, f.group) for f in result.flags} == {("ethnicity_broad", "Black")}
    words = " ".join(result.summary)
    assert "sicker at the same score" in words and "access barrier" in words
    assert any("Sicker at the same score" in h.cause for h in result.hazards)
    html = report_html.render(result)
    assert "Need at equal score" in html and "long-term conditions coded by the GP" in html


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_barrier_no_need_flag(seed: int) -> None:
    result = audit(table(seed=seed))
    assert not [f for f in result.flags if f.metric.startswith("need_")]


def test_observed_over_expected_is_computed_by_decile() -> None:
    frame = table(8_000, seed=5, barrier=0.5)
    result = audit(frame, bootstrap_draws=50)
    c = need(result, "need_frailty", "Black")
    d = score_deciles(frame.risk.to_numpy())
    ref = frame.ethnicity_broad == "White"
    ref_mean = frame[ref].groupby(d[ref.to_numpy()]).frailty_deficits.mean()
    b = frame.ethnicity_broad == "Black"
    expected = ref_mean.reindex(d[b.to_numpy()]).to_numpy().sum()
    assert c.ratio == pytest.approx(frame[b].frailty_deficits.sum() / expected, rel=1e-9)
    block = next(n for n in result.need if n.measure == "need_frailty")
    cell = next(x for x in block.deciles if x.group == "Black" and x.decile == 10)
    assert cell.n == int((b.to_numpy() & (d == 9)).sum())
    assert cell.mean.ci[0] <= cell.mean.value <= cell.mean.ci[1]


def test_need_is_skipped_when_switched_off_or_columns_missing() -> None:
    frame = table(4_000, seed=6)
    assert audit(frame, need_at_equal_score=False, bootstrap_draws=20).need == []
    assert (
        audit(
            frame.drop(columns=["gp_coded_conditions", "frailty_deficits", "died_in_follow_up"]), bootstrap_draws=20
        ).need
        == []
    )


def test_published_counts_follow_the_disclosure_policy() -> None:
    from evaluation.disclosure import Policy
    from evaluation.fairness.publish import every_count, public_report

    frame = table(3_000, seed=7)
    frame.loc[:4, "ethnicity_broad"] = "Tiny"  # five people: hidden, and so is one more cell of the grouping
    policy = Policy()
    result = run_audit(frame, G, AuditConfig(bootstrap_draws=20), {"model": "toy"}, disclosure=policy)
    cells = result.published_counts["ethnicity_broad"]
    assert cells["Tiny"]["people"] is None and sum(c["people"] is None for c in cells.values()) >= 2
    shown = [c["people"] for c in cells.values() if c["people"] is not None]
    assert all(n % 5 == 0 and n > 7 for n in shown)
    public = public_report(result, policy)
    assert all(c == 0 or c > 7 for c in every_count(public))
    tiny = next(r for g in public["groupings"] for r in g["groups"] if r["group"] == "Tiny")
    assert all(v is None for v in tiny["metrics"].values())
    # several rows per person: people are counted once
    twice = pd.concat([frame, frame], ignore_index=True)
    again = run_audit(
        twice, G, AuditConfig(bootstrap_draws=20), {"model": "toy"}, cluster="person_id", disclosure=policy
    )
    assert again.published_counts["ethnicity_broad"]["White"] == cells["White"]


def test_published_ppv_reveals_no_small_count_of_people_flagged() -> None:
    """PPV times the people flagged (share flagged x people) is the count of true positives, and the rest are
    false positives: a group with 3 false positives among 15 flagged must not publish both PPV and share flagged
    (found by the disclosure red-team: the demo's public report showed them for such groups)."""
    from evaluation.disclosure import Policy
    from evaluation.fairness.publish import public_report

    rng = np.random.default_rng(3)
    n_white, n_rare = 3_700, 300
    risk_white = np.sort(rng.uniform(0.01, 0.6, n_white))
    y_white = (rng.random(n_white) < risk_white).astype(int)
    y_rare = np.zeros(n_rare, dtype=int)
    y_rare[:40] = 1  # 40 with the outcome: 12 of them flagged, and 3 without it flagged
    risk_rare = np.full(n_rare, 0.02) + rng.uniform(0, 0.01, n_rare)
    risk_rare[:12] = 0.9 + rng.uniform(0, 0.05, 12)
    risk_rare[40:43] = 0.9 + rng.uniform(0, 0.05, 3)
    frame = pd.DataFrame(
        {
            "outcome": np.concatenate([y_white, y_rare]),
            "risk": np.concatenate([risk_white, risk_rare]),
            "ethnicity_broad": ["White"] * n_white + ["Rare"] * n_rare,
            "stratum": "all",
            "person_id": np.arange(n_white + n_rare),
        }
    )
    policy = Policy()
    result = run_audit(
        frame, G, AuditConfig(bootstrap_draws=20, need_at_equal_score=False), {"model": "toy"}, disclosure=policy
    )
    full = next(r for g in result.groupings for r in g.groups if r.group == "Rare")
    assert round(full.metrics["ppv"].value * full.metrics["selection_rate"].value * full.n) == 12  # 3 false positives
    rare = next(r for g in public_report(result, policy)["groupings"] for r in g["groups"] if r["group"] == "Rare")
    assert rare["people"] == 300 and rare["metrics"]["fpr"] is None  # false positives: 3, hidden as such
    shown = rare["metrics"]
    if shown["ppv"] is not None and shown["selection_rate"] is not None:
        flagged = shown["selection_rate"] * rare["people"]
        false_positives = round(flagged - shown["ppv"] * flagged)
        assert not 0 < false_positives <= policy.suppress_max, f"{false_positives} false positives worked out"
    assert shown["ppv"] is None
