"""Plain-English findings and DCB0129-style hazards written from an audit's flags."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evaluation.fairness.results import AuditResult, Comparison, GroupingResult, Hazard

METRIC_NAMES = {
    "selection_rate": "share flagged",
    "tpr": "true positive rate (people with the outcome who were flagged)",
    "fnr": "false negative rate (people with the outcome who were missed)",
    "fpr": "false positive rate (people without the outcome who were flagged)",
    "ppv": "positive predictive value (flagged people who had the outcome)",
    "predicted_to_observed": "predicted / observed risk",
    "auroc": "AUROC (discrimination)",
    "calibration_slope": "calibration slope",
    "event_rate": "observed outcome rate",
    "mean_predicted": "mean predicted risk",
    "need_gp_conditions": "long-term conditions coded by the GP, at equal score",
    "need_frailty": "frailty deficits, at equal score",
    "need_death": "deaths in the follow-up, at equal score",
    "observed_to_expected": "observed / expected outcomes (everyone)",
    "overall_calibration_slope": "calibration slope (everyone)",
}
NEED_WORDS = {
    "need_gp_conditions": "long-term conditions coded by the GP",
    "need_frailty": "frailty deficits",
    "need_death": "deaths in the follow-up (per person)",
}
SHORT = {
    "selection_rate": "share flagged",
    "tpr": "TPR",
    "fnr": "FNR",
    "fpr": "FPR",
    "ppv": "PPV",
    "predicted_to_observed": "predicted/observed",
    "auroc": "AUROC",
    "calibration_slope": "calibration slope",
    "event_rate": "outcome rate",
    "mean_predicted": "mean predicted risk",
    "need_gp_conditions": "GP-coded conditions at equal score",
    "need_frailty": "frailty at equal score",
    "need_death": "deaths at equal score",
    "observed_to_expected": "observed/expected (everyone)",
    "overall_calibration_slope": "calibration slope (everyone)",
}
SEVERITY = ["Minor", "Significant", "Considerable", "Major", "Catastrophic"]
LIKELIHOOD = ["Very low", "Low", "Medium", "High", "Very high"]
# DCB0129 / DCB0160 risk matrix: RISK[likelihood][severity], 1 = very low ... 5 = very high
RISK = [[1, 1, 2, 2, 3], [1, 2, 2, 3, 4], [2, 2, 3, 3, 4], [2, 3, 3, 4, 5], [3, 4, 4, 5, 5]]
RISK_WORDS = {1: "very low", 2: "low", 3: "medium", 4: "high", 5: "very high"}


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _ci(c: Comparison) -> str:
    lo, hi = c.ratio_ci
    if lo is None:
        return ""
    kind = "95% CI" if c.ratio_ci_level <= 0.9501 else "simultaneous 95% CI"
    return f", {kind} {lo:.2f}-{hi:.2f}"


def under_identifies(c: Comparison) -> bool:
    """Does this flag mean the group's need is under-estimated (fewer of its people reach care)?"""
    low = c.ratio is not None and c.ratio < 1  # a ratio of 0 (nobody in the group reached) is the lowest
    if c.metric in NEED_WORDS:  # sicker at the same score: their need is under-ranked
        return not low
    return (c.metric in ("tpr", "predicted_to_observed", "selection_rate") and low) or (c.metric == "fnr" and not low)


def sentence(c: Comparison, grouping_title: str, outcome: str) -> str:
    ratio = f"ratio {c.ratio:.2f}{_ci(c)}"
    who = f"{grouping_title}: **{c.group}**"
    ref = c.reference_group
    if c.metric == "tpr":
        text = (
            f"{who}: of people who went on to have {outcome}, the model flagged {_pct(c.value)}, against "
            f"{_pct(c.reference_value)} in {ref} ({ratio}). "
        )
        text += (
            "People in this group who need proactive care are less likely to be offered it."
            if c.ratio < 1
            else "People in this group with the outcome are flagged more often than in the reference group."
        )
    elif c.metric == "predicted_to_observed":
        text = (
            f"{who}: predicted risk is {c.value:.2f} times the observed rate, against {c.reference_value:.2f} "
            f"in {ref} ({ratio}). "
        )
        text += (
            "The model under-predicts this group's risk."
            if c.ratio < 1
            else "The model over-predicts this group's risk."
        )
    elif c.metric == "fpr":
        text = (
            f"{who}: {_pct(c.value)} of people without {outcome} were flagged, against {_pct(c.reference_value)} "
            f"in {ref} ({ratio}). "
        )
        text += (
            "More people in this group are contacted who did not need it."
            if c.ratio > 1
            else "Fewer people in this group are flagged without need."
        )
    elif c.metric == "ppv":
        text = (
            f"{who}: {_pct(c.value)} of flagged people went on to have {outcome}, against "
            f"{_pct(c.reference_value)} in {ref} ({ratio}). "
        )
        text += (
            "A flag means less for this group."
            if c.ratio < 1
            else "Flagged people in this group are more often truly at risk: the bar to be flagged may be higher for them."
        )
    elif c.metric in NEED_WORDS:
        text = (
            f"{who}: at the same risk score, people in this group have {c.value:.3g} {NEED_WORDS[c.metric]} on "
            f"average, against {c.reference_value:.3g} expected from {ref} in the same score deciles ({ratio}). "
        )
        text += (
            "They are sicker at the same score: the score under-ranks their need. A score built on "
            f"{outcome} inherits how a community uses hospitals; a group that uses them less for the same "
            "need (an access barrier) looks lower-risk than it is (Obermeyer et al., Science 2019)."
            if c.ratio > 1
            else "They are less sick at the same score."
        )
    else:
        text = (
            f"{who}: {METRIC_NAMES.get(c.metric, c.metric)} {c.value:.3g} against {c.reference_value:.3g} in {ref} "
            f"({ratio})."
        )
    if c.adjusted_ratio is not None:
        text += f" The gap remains after allowing for age and sex (adjusted ratio {c.adjusted_ratio:.2f})."
    return text


def _coverage_note(g: GroupingResult | None, group: str) -> str | None:
    if g is None:
        return None
    rows = {r["group"]: r for r in g.coverage}
    mine, ref = rows.get(group), rows.get(g.reference)
    if not mine or not ref:
        return None
    a, b = mine.get("gp_coding_completeness"), ref.get("gp_coding_completeness")
    if a is not None and b is not None and b - a > 0.1:
        return (
            f"Data coverage points to a cause: of long-term conditions recorded in hospital for {group}, only "
            f"{a:.0%} are also coded by the GP, against {b:.0%} in {g.reference}. Under-recorded diagnoses "
            "lower predicted risk."
        )
    a, b = mine.get("ethnicity_recorded"), ref.get("ethnicity_recorded")
    if a is not None and b is not None and b - a > 0.15:
        return f"Ethnicity is recorded for only {a:.0%} of {group}, against {b:.0%} in {g.reference}."
    return None


def summary(result: AuditResult) -> list[str]:
    pop, cfg = result.population, result.config
    outcome = result.subject.get("outcome", "the outcome")
    lo, hi = cfg.tolerance
    across = (
        f"{pop['people']:,} people ({pop['events']:,} with {outcome})"
        if pop["people"] == pop["rows"]
        else f"{pop['rows']:,} scored rows from {pop['people']:,} people ({pop['events']:,} rows followed by {outcome})"
    )
    out = [
        f"This audit compares {len(result.groupings)} groupings across {across}. Operating policy: {pop['policy']}. Groups are compared with a stated "
        f"reference group; a ratio outside {lo:g}-{hi:g} whose 95% interval excludes parity, and which age and sex "
        "do not explain, is flagged."
    ]
    titles = {**{n.name: n.title for n in result.need}, **{g.name: g.title for g in result.groupings}}
    if result.absolute is not None:
        out.append(absolute_sentence(result))
    out += [f"{g.title}: {g.reference_note}" for g in result.groupings if g.reference_note]
    blind = unjudged(result)
    if not result.flags and len(blind) == len(result.groupings):
        out.append(
            "No comparison could be judged, so no group could be flagged: this audit is no evidence that the "
            "score is fair."
        )
    elif not result.flags:
        out.append("No group was flagged: the audit passed.")
    else:
        groups = sorted({(f.grouping, f.group) for f in result.flags})
        out.append(f"{len(result.flags)} flag(s) in {len(groups)} group(s) need a safety officer's decision:")
        by_group: dict[tuple[str, str], list] = defaultdict(list)
        for f in result.flags:
            by_group[(f.grouping, f.group)].append(f)
        for (grouping, group), flags in by_group.items():  # grouping order, as audited
            if grouping == "overall":  # said with the performance for everyone
                continue
            for f in flags:
                out.append(sentence(f, titles[grouping], outcome))
            note = _coverage_note(next((g for g in result.groupings if g.name == grouping), None), group)
            if note:
                out.append(note)
    if result.uncertain:
        small = sorted({f"{u.group}" for u in result.uncertain})
        out.append(
            f"{len(result.uncertain)} comparison(s) fell outside the band but their intervals include parity "
            f"(too little data to tell), for: {', '.join(small[:12])}{' ...' if len(small) > 12 else ''}. "
            "These are marked 'uncertain': they call for more data or monitoring, not action."
        )
    out += blind
    absent = [f"{g.title}: {', '.join(g.absent)}" for g in result.groupings if g.absent]
    if absent:
        out.append(
            "No one in these data is in the following groups, so the score was not assessed for them: "
            + "; ".join(absent)
            + "."
        )
    smalls = sorted({r.group for g in result.groupings for r in g.groups if r.small})
    if smalls:
        out.append(
            f"{len(smalls)} group(s) are small (fewer than {cfg.min_group_size} people or "
            f"{cfg.min_group_events} people with the outcome) and are reported but not judged: "
            f"{', '.join(smalls[:12])}{' ...' if len(smalls) > 12 else ''}."
        )
    out.append(
        "Why it matters: a risk model can be well calibrated overall yet miss more of the people who need care "
        "in some communities (as reported for Scotland's SPARRA). A group whose need is under-estimated receives "
        "less proactive care, widening the inequalities Core20PLUS5 sets out to narrow."
    )
    return out


def unjudged(result: AuditResult) -> list[str]:
    """A sentence for each grouping in which nothing could be judged (so nothing could flag), and why."""
    out = []
    for g in result.groupings:
        if any(c.status not in ("shown only", "small group", "not estimable") for c in g.comparisons):
            continue
        if not g.judged:
            why = "no metric is judged in it"
        elif len(g.groups) < 2:
            why = f"everyone is in one group, {g.groups[0].group}" if g.groups else "it has no one"
        else:
            why = "every group other than the reference is small or its ratios cannot be estimated"
        out.append(f"{g.title}: nothing could be judged ({why}), so no group in it could be flagged.")
    return out


def absolute_sentence(result: AuditResult) -> str:
    """Performance for everyone in words (AUROC always; calibration for probabilities), and what a flag means."""
    m = result.absolute.metrics

    def ci(key: str, fmt: str) -> str:
        lo, hi = m[key].ci
        return "" if lo is None else f" (95% CI {lo:{fmt}}-{hi:{fmt}})"

    text = f"Performance for everyone: AUROC {m['auroc'].value:.3f}{ci('auroc', '.3f')}"
    if "observed_to_expected" not in m:
        return text + "; the scores are not probabilities, so calibration is not assessed."
    oe, mp, er = m["observed_to_expected"].value, m["mean_predicted"].value, m["event_rate"].value
    text += (
        f"; mean predicted risk {mp:.1%} against {er:.1%} observed (observed/expected {oe:.2f}"
        f"{ci('observed_to_expected', '.2f')}); calibration in the large "
        f"{m['calibration_in_the_large'].value:.2f}, slope {m['calibration_slope'].value:.2f}"
        f"{ci('calibration_slope', '.2f')}."
    )
    for f in result.absolute.flags:
        if f.metric == "observed_to_expected":
            text += (
                f" **The score is miscalibrated for everyone**: it predicts {1 / oe:.1f} times the outcomes "
                "observed. Ratios between groups cannot show this when every group is wrong alike."
            )
        else:
            text += (
                f" **The calibration slope for everyone ({f.ratio:.2f}) is outside "
                f"{result.config.slope_tolerance[0]:g}-{result.config.slope_tolerance[1]:g}**: predicted risks are "
                + ("too extreme." if f.ratio < 1 else "too modest.")
            )
    return text


def _likelihood(flags: list[Comparison]) -> int:
    gaps = [abs(math.log(f.ratio)) if f.ratio > 0 else math.inf for f in flags if f.ratio is not None]
    worst = max(gaps, default=0.0)
    return 3 if worst > math.log(2) else 2 if worst > math.log(1.5) else 1


def _own_model(result: AuditResult) -> bool:
    """Is the subject one of the product's registered models (worklists, promotion), or another tool's scores?"""
    return result.subject.get("kind") == "registered model"


def _effect(result: AuditResult, under: bool, overall: bool) -> str:
    if overall:
        return (
            "Risk figures shown to clinicians and planners are wrong in absolute terms for everyone: thresholds, "
            "expected numbers of events and capacity plans built on them mislead, even if the ranking is sound."
        )
    if _own_model(result):
        return (
            "People in this group who would benefit from proactive care are less likely to appear on "
            "coordinators' worklists; avoidable emergency care may follow."
            if under
            else "Coordinators' time goes to people in this group who did not need contact, or flags mean less "
            "for them."
        )
    return (
        "People in this group who need care are less likely to be identified by this tool's scores; care "
        "allocated on them may under-serve the group."
        if under
        else "The tool's scores lead to people in this group being selected without need, or mean less for them."
    )


def hazards(result: AuditResult) -> list[Hazard]:
    from evaluation.fairness.results import Hazard

    outcome = result.subject.get("outcome", "the outcome")
    model = result.subject.get("model", result.subject.get("name", "score"))
    titles = {
        **{n.name: n.title for n in result.need},
        **{g.name: g.title for g in result.groupings},
        "overall": "everyone",
    }
    grouped: dict[tuple[str, str], list] = defaultdict(list)
    for f in result.flags:
        grouped[(f.grouping, f.group)].append(f)
    own = _own_model(result)
    controls = (
        "Worklists are decision support reviewed by clinicians, who can add anyone by judgement; the audit is "
        "repeated at every retraining and by monitoring."
        if own
        else "None recorded by this audit: the deploying organisation must state the controls around this tool "
        "(clinical review of its output, local recalibration, monitoring)."
    )
    decision = (
        "Open: awaiting a safety officer's decision (accept with controls, mitigate, or reject the model)."
        if own
        else "Open: for the deploying organisation's clinical safety officer to assess before relying "
        "on this tool's scores."
    )
    out = []
    for n, ((grouping, group), flags) in enumerate(grouped.items(), start=1):
        g = next((x for x in result.groupings if x.name == grouping), None)
        overall = grouping == "overall"
        under = any(under_identifies(f) for f in flags)
        severity = 1 if under or overall else 0
        likelihood = _likelihood(flags)
        rating = RISK[likelihood][severity]
        cause = "; ".join(
            f"{SHORT.get(f.metric, f.metric)} ratio {f.ratio:.2f}{_ci(f)} vs {f.reference_group}" for f in flags
        )
        note = _coverage_note(g, group)
        if any(f.metric in NEED_WORDS for f in flags):
            note = (
                "Sicker at the same score: measures of need that do not depend on service use are higher than in "
                "the reference group at the same risk; the outcome the score predicts may under-record this "
                "group's need (for example an access barrier to hospital care)."
            )
        residual = decision
        if result.mitigation and result.mitigation.grouping == grouping:
            row = next((r for r in result.mitigation.rows if r.group == group), None)
            if row and row.after.get("tpr") is not None and row.before.get("tpr") is not None:
                residual += (
                    f" With the group-threshold mitigation shown, TPR would move from {row.before['tpr']:.0%} "
                    f"to {row.after['tpr']:.0%}."
                )
        what = (
            "is miscalibrated for everyone"
            if overall
            else f"{'under-identifies' if under else 'mis-ranks'} people at risk of {outcome} in {group} "
            f"({titles.get(grouping, grouping).lower()})"
        )
        out.append(
            Hazard(
                hazard_id=f"H-{model}-{grouping}-{n:02d}",
                hazard=f"{model} {what}" + (f" (predicting {outcome})" if overall else ""),
                cause=cause + (f". {note}" if note else "" if overall else ". Not explained by age and sex."),
                effect=_effect(result, under, overall),
                existing_controls=controls,
                severity=SEVERITY[severity],
                likelihood=LIKELIHOOD[likelihood],
                risk_rating=rating,
                residual_risk=residual,
                flags=[f"{f.grouping}/{f.group}/{f.metric}" for f in flags],
            )
        )
    return out
