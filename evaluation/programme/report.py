"""The programme evaluation report for planners and data scientists: aggregates only, through the disclosure
policy (counts of people hidden when small and rounded; group estimates shown only for groups large enough to
be shown), as JSON and a self-contained HTML page."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from evaluation.disclosure import Policy
from phm.core.reports import render

COUNTS = ("enrolled_in_data", "enrolled_with_follow_up", "matched", "unmatched", "comparison_people")
OUTCOME_LABELS = {"admissions": "Emergency admissions", "bed_days": "Emergency bed-days", "ae": "A&E attendances"}


def release(result: dict, policy: Policy) -> dict:
    """`result` of `evaluate_programme` made releasable: people counts via `policy.count`, rates and effects
    rounded, a group's estimate withheld when its enrolled count would be hidden."""
    out = {
        k: v
        for k, v in result.items()
        if k not in (*COUNTS, "groups", "outcomes", "balance", "matched_enrolled", "enrolled_groups", "discontinuity")
    }
    out["counts"] = {**_stage_counts(result, policy), "comparison_people": policy.count(result["comparison_people"])}
    shown: dict[str, dict[str, int | None]] = {}
    if "enrolled_groups" in result:
        # the matched total and its breakdowns by group are linked tables: protected together (secondary
        # suppression), so no hidden group can be worked out from the total and the other groups
        people = result["enrolled_groups"].assign(practice_code="all", pcn_code="all", risk=0.0)
        dims = list(result["groups"])
        protected = policy.release(people, dims, root_label="enrolled")
        if protected.total(("root", "enrolled")).count is None and out["counts"]["matched"] is not None:
            # hidden there, so not shown through the stages either, nor anything it could be worked out from
            out["counts"].update(enrolled_with_follow_up=None, matched=None, unmatched=None)
        shown = {d: {level: cell.count for level, cell in protected.breakdown(("root", "enrolled"), d)} for d in dims}
    out["disclosure"] = policy.words()
    r = lambda v: None if v is None else round(float(v), 4)  # noqa: E731
    out["balance"] = [{k: (r(v) if k != "covariate" else v) for k, v in row.items()} for row in result["balance"]]
    out["max_abs_smd_matched"] = r(result["max_abs_smd_matched"])
    out["max_abs_smd_after"] = r(result["max_abs_smd_after"])

    def est(e: dict) -> dict:
        return {
            "difference": r(e["difference"]),
            "relative": r(e["relative"]),
            "difference_ci": [r(x) for x in e["difference_ci"]],
            "relative_ci": [r(x) for x in e["relative_ci"]],
        }

    out["outcomes"] = {
        name: {k: (est(v) if isinstance(v, dict) else r(v)) for k, v in o.items()}
        for name, o in result["outcomes"].items()
    }
    out["groups"] = {}
    for col, g in result["groups"].items():
        rows = []
        for row in g["rows"]:
            n = shown[col].get(row["group"]) if col in shown else policy.count(row["enrolled"])
            e = (
                est(row)
                if n is not None
                else {"difference": None, "relative": None, "difference_ci": [None, None], "relative_ci": [None, None]}
            )
            rows.append({"group": row["group"], "enrolled": n, **e})
        out["groups"][col] = {"label": g["label"], "outcome": g["outcome"], "rows": rows}
    if "discontinuity" in result:
        out["discontinuity"] = _release_discontinuity(result["discontinuity"], policy, r)
    return out


def _stage_counts(result: dict, policy: Policy) -> dict[str, int | None]:
    """The enrolment counts, linked by sums (enrolled in data = matched + unmatched + without follow-up), protected
    together as one linked table, so a hidden one is never the difference of shown ones; "with follow-up" (matched +
    unmatched) is shown only when the shown counts give it anyway."""
    n = {
        "matched": int(result["matched"]),
        "unmatched": int(result["unmatched"]),
        "no_follow_up": max(0, int(result["enrolled_in_data"]) - int(result["enrolled_with_follow_up"])),
    }
    stages = [stage for stage, k in n.items() for _ in range(k)]
    if not stages:
        return {k: 0 for k in COUNTS if k != "comparison_people"}
    people = pd.DataFrame({"stage": stages}).assign(practice_code="all", pcn_code="all", risk=0.0)
    protected = policy.release(people, ["stage"], root_label="all", levels={"stage": list(n)})
    root = ("root", "all")
    stage = {level: cell.count for level, cell in protected.breakdown(root, "stage")}
    total = protected.total(root).count
    known = (stage["matched"] is not None and stage["unmatched"] is not None) or (
        total is not None and stage["no_follow_up"] is not None
    )
    follow_up = policy.rounded(n["matched"] + n["unmatched"]) if known else None
    return {
        "enrolled_in_data": total,
        "enrolled_with_follow_up": follow_up,
        "matched": stage["matched"],
        "unmatched": stage["unmatched"],
    }


def _release_discontinuity(rd: dict, policy: Policy, r) -> dict:
    """People counts through the policy; an estimate whose side of the cut-off would be hidden is withheld."""
    out = {"cutoff": rd["cutoff"], "month": rd["month"], "people_scored": policy.count(rd["people_scored"])}
    for name in OUTCOME_LABELS:
        e = rd.get(name)
        if e is None:
            continue
        if "error" in e:
            out[name] = {"error": e["error"]}
            continue
        below, above = policy.count(e["below"]), policy.count(e["above"])
        if below is None or above is None:
            out[name] = {"error": "too few people on a side of the cut-off to show under the disclosure policy"}
            continue
        out[name] = {
            k: ([r(x) for x in v] if isinstance(v, list) else r(v) if isinstance(v, float) else v) for k, v in e.items()
        } | {"below": below, "above": above}
    return out


def _pct(v: float | None) -> str:
    return "*" if v is None else f"{100 * v:+.1f}%"


def _ci(pair: list) -> str:
    return "*" if None in pair else f"{100 * pair[0]:+.1f}% to {100 * pair[1]:+.1f}%"


def _discontinuity_rows(released: dict) -> list[dict]:
    rd = released.get("discontinuity")
    if not rd:
        return []
    rows = []
    for name, label in OUTCOME_LABELS.items():
        e = rd.get(name, {"error": "not estimated"})
        if "error" in e:
            rows.append(
                {
                    "outcome": label,
                    "jump per person-year": "*",
                    "95% interval": "*",
                    "enrolment jump": "*",
                    "effect of enrolment": "*",
                    "95% interval (effect)": "*",
                    "people below / above": "*",
                    "bandwidth": e["error"],
                }
            )
            continue
        pair = lambda v: "*" if None in v else f"{v[0]:+.3f} to {v[1]:+.3f}"  # noqa: E731
        rows.append(
            {
                "outcome": label,
                "jump per person-year": f"{e['outcome_jump']:+.3f}",
                "95% interval": pair(e["outcome_jump_ci"]),
                "enrolment jump": f"{e['enrolled_jump']:+.3f}",
                "effect of enrolment": "*" if e["effect"] is None else f"{e['effect']:+.3f}",
                "95% interval (effect)": pair(e["effect_ci"]),
                "people below / above": f"{e['below']} / {e['above']}",
                "bandwidth": f"{e['bandwidth']:.4g} ({e['bandwidth_rule']})",
            }
        )
    return rows


def write(released: dict, folder: Path, title: str = "Programme evaluation") -> tuple[Path, Path]:
    """Save the released report as HTML and JSON under `folder`; returns both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    effects = []
    for name, o in released["outcomes"].items():
        for method, key in (
            ("naive before-after (enrolled only)", "before_after"),
            ("matched difference-in-differences", "difference_in_differences"),
            ("matched difference-in-differences, matching only", "difference_in_differences_matched_only"),
            (
                "matched difference-in-differences, enrol now against not now (comparisons enrolled later as seen)",
                "difference_in_differences_not_now",
            ),
        ):
            e = o.get(key)
            if e is None:  # a report released before this estimate existed
                continue
            effects.append(
                {
                    "outcome": OUTCOME_LABELS[name],
                    "method": method,
                    "change per person-year": e["difference"],
                    "relative change": _pct(e["relative"]),
                    "95% interval": _ci(e["relative_ci"]),
                }
            )
    groups = [
        {
            "title": f"Emergency admissions by {g['label']}",
            "rows": [
                {
                    "group": row["group"],
                    "enrolled": "*" if row["enrolled"] is None else row["enrolled"],
                    "relative change": _pct(row["relative"]),
                    "95% interval": _ci(row["relative_ci"]),
                }
                for row in g["rows"]
            ],
        }
        for g in released["groups"].values()
    ]
    counts = [{"people": k.replace("_", " "), "count": "*" if v is None else v} for k, v in released["counts"].items()]
    page = render(
        "programme.html.j2",
        title=title,
        released=released,
        counts=counts,
        effects=effects,
        balance=released["balance"],
        groups=groups,
        discontinuity=_discontinuity_rows(released),
    )
    html_path, json_path = folder / "programme_evaluation.html", folder / "programme_evaluation.json"
    html_path.write_text(page, encoding="utf-8")
    json_path.write_text(json.dumps(released, indent=2, default=str))
    return html_path, json_path
