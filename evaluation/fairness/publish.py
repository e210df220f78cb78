"""A version of the bias report safe to publish: the one disclosure policy applied to every count, and no
figure shown from which a count under the threshold could be worked out.

At audit time (where the person rows are) the people and the people with the outcome in every group are released
through `Policy.release` (small cells hidden, secondary suppression across each grouping's total, the rest
rounded): `protected_counts`, kept in the sealed report. `public_report` then shows, per group, those protected
counts and a metric only when the group's counts are shown and every count the metric implies (people flagged,
outcomes flagged and missed, true and false positives from PPV and the share flagged, deaths, ...) is 0 or above
the threshold; hidden figures are marked "*". Ratios to the reference group need both sides shown.
Overall figures describe the whole population."""

from __future__ import annotations

import math

import pandas as pd

from evaluation.disclosure import Policy
from evaluation.fairness.results import AuditResult

ROOT = ("root", "all")
RATE_DECIMALS = 2


def protected_counts(frame: pd.DataFrame, columns: dict[str, str], outcome: str, policy: Policy) -> dict:
    """{grouping: {group: {"people": n | None, "events": n | None}}} under the policy (None = hidden)."""
    cols = {name: col for name, col in columns.items() if col in frame}
    if not cols:
        return {}
    f = pd.DataFrame({name: frame[col].astype("string").fillna("Unknown") for name, col in cols.items()})
    f["_practice"], f["_pcn"], f["_one"] = "all", "all", 1.0
    events = (pd.to_numeric(frame[outcome], errors="coerce") == 1).to_numpy()
    people = policy.release(f, list(cols), value="_one", practice="_practice", pcn="_pcn", root_label="all")
    withy = policy.release(
        f[events], list(cols), value="_one", practice="_practice", pcn="_pcn", root_label="all", levels=people.levels
    )
    return {
        name: {
            level: {"people": shown.count, "events": dict(withy.breakdown(ROOT, name))[level].count}
            for level, shown in people.breakdown(ROOT, name)
        }
        for name in cols
    }


def _implied(metric: str, v: float, n: float, e: float, selected: float | None) -> list[float]:
    """Counts of people that a metric's value reveals, given the group's people n, outcomes e and share flagged
    `selected` (PPV times the people flagged is the true positives, the rest false positives)."""
    if metric == "ppv":
        if selected is None:
            return [1.0]  # the people flagged are unknown here: not shown
        flagged = selected * n
        return [v * flagged, flagged - v * flagged, e, n - e]
    if metric in ("tpr", "fnr"):
        tp = v * e if metric == "tpr" else (1 - v) * e
        return [tp, e - tp]
    if metric == "selection_rate":
        return [v * n, n - v * n]
    if metric == "fpr":
        return [v * (n - e), (1 - v) * (n - e)]
    if metric == "event_rate":
        return [e, n - e]
    return [e, n - e]  # auroc, calibration, predicted/observed: outcomes and non-outcomes


def _safe(counts: list[float], policy: Policy) -> bool:
    return all(round(c) == 0 or round(c) > policy.suppress_max for c in counts if math.isfinite(c))


def public_report(result: AuditResult, policy: Policy) -> dict:
    """The publishable twin of a bias report (see the module notes)."""
    counts = result.published_counts
    groupings = []
    for g in result.groupings:
        cells = counts.get(g.name)
        if cells is None:
            continue
        shown: dict[str, dict[str, float | None]] = {}
        rows = []
        for r in g.groups:
            c = cells.get(r.group, {"people": None, "events": None})
            visible = c["people"] is not None and c["events"] is not None
            metrics = {}
            sel = r.metrics.get("selection_rate")
            for m, mv in r.metrics.items():
                ok = (
                    visible
                    and mv.value is not None
                    and not r.small
                    and _safe(_implied(m, mv.value, r.n, r.events, sel.value if sel else None), policy)
                )
                metrics[m] = round(mv.value, RATE_DECIMALS + 1) if ok else None
            shown[r.group] = metrics
            rows.append(
                {
                    "group": r.group,
                    "people": c["people"],
                    "with_outcome": c["events"],
                    "metrics": metrics,
                    "reference": r.is_reference,
                }
            )
        comparisons = []
        for c in g.comparisons:
            a, b = shown.get(c.group, {}).get(c.metric), shown.get(c.reference_group, {}).get(c.metric)
            ok = a is not None and b is not None and c.ratio is not None
            comparisons.append(
                {
                    "group": c.group,
                    "metric": c.metric,
                    "status": c.status if ok else "not published",
                    "ratio": round(c.ratio, 2) if ok else None,
                    "ratio_ci": [round(x, 2) for x in c.ratio_ci] if ok and c.ratio_ci[0] is not None else None,
                }
            )
        groupings.append(
            {"name": g.name, "title": g.title, "reference": g.reference, "groups": rows, "comparisons": comparisons}
        )
    need = []
    for n in result.need:
        cells = counts.get(n.name, {})
        rows = []
        for c in n.comparisons:
            people = cells.get(c.group, {}).get("people")
            ref_people = cells.get(n.reference, {}).get("people")
            implied = [c.value * people] if n.measure == "need_death" and people and c.value is not None else []
            ok = (
                people is not None
                and ref_people is not None
                and c.ratio is not None
                and _safe(implied, policy)
                and c.status != "small group"
            )
            rows.append(
                {
                    "group": c.group,
                    "people": people,
                    "ratio": round(c.ratio, 2) if ok else None,
                    "ratio_ci": [round(x, 2) for x in c.ratio_ci] if ok and c.ratio_ci[0] is not None else None,
                    "status": c.status if ok else "not published",
                }
            )
        need.append(
            {"grouping": n.name, "title": n.title, "measure": n.measure_title, "reference": n.reference, "rows": rows}
        )
    overall = (
        {k: round(v.value, 3) for k, v in result.absolute.metrics.items() if v.value is not None}
        if result.absolute
        else {}
    )
    return {
        "subject": {k: v for k, v in result.subject.items() if k in ("kind", "model", "name", "version", "outcome")},
        "created_at": result.created_at,
        "report_sha256": result.report_sha256,
        "disclosure": {"policy": policy.describe(), "words": policy.words()},
        "population": {
            "people": policy.count(result.population["people"]),
            "with_outcome": policy.count(result.population["events"]),
        },
        "overall": overall,
        "flags": len(result.flags),
        "summary_withheld": "The full report's plain-English "
        "summary quotes exact figures; it is not part of the published version.",
        "groupings": groupings,
        "need_at_equal_score": need,
    }


def every_count(public: dict) -> list[int]:
    """Every count of people in a published report (for checks: each is 0 or above the threshold)."""
    out = [v for v in public["population"].values() if v is not None]
    for g in public["groupings"]:
        out += [r[k] for r in g["groups"] for k in ("people", "with_outcome") if r[k] is not None]
    out += [r["people"] for n in public["need_at_equal_score"] for r in n["rows"] if r["people"] is not None]
    return out
