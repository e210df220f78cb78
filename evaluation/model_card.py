"""Model card with the TRIPOD+AI items that apply, as JSON and as a self-contained HTML page."""

from __future__ import annotations

import json

from evaluation.disclosure import Policy
from models.specs.base import ModelSpec
from phm.core.reports import render

USERS = (
    "Care coordinators (PCN and practice teams); reviewed by clinical safety officers; maintained by data scientists."
)


def build_card(
    *,
    spec: ModelSpec,
    version: int | None,
    run_id: str,
    cfg: dict,
    manifests: dict,
    predictors: list[str],
    descriptions: dict[str, str],
    performance: dict,
    comparators: dict,
    oracle: dict | None,
    subgroups: list[dict],
    importance: list[dict],
    extra: dict | None = None,
) -> dict:
    """The card as a dictionary (the JSON twin)."""
    train, val = manifests["train"], manifests["validation"]
    return {
        "model": spec.name,
        "version": version,
        "mlflow_run_id": run_id,
        "intended_use": spec.intended_use,
        "intended_users": USERS,
        "data": {
            "source": f"PHM warehouse ({train.get('data_source', 'linked ICS warehouse')})",
            "warehouse_as_of": train.get("warehouse_as_of"),
            "data_end": train.get("data_end"),
            "training_index_dates": train["index_dates"],
            "validation_index_dates": [val["index_dates"][0], val["index_dates"][-1]]
            if len(val["index_dates"]) > 2
            else val["index_dates"],
            "feature_set": train["feature_set"],
            "feature_definition_hash": train["definition_hash"],
        },
        "population": {
            "rules": train["cohort"]["rules"],
            "training": train["cohort"]["eligible_by_index_date"],
            "excluded_at_training": train["cohort"]["excluded_by_reason"],
        },
        "outcome": {
            "column": train["label"]["column"],
            "rules": train["label"]["rules"],
            "censoring": "people who moved away without an outcome, or whose follow-up ran past the data, "
            "were excluded from training and validation (counted below)",
            "censored_training": train["label"]["censored_by_reason"],
            "censored_validation": val["label"]["censored_by_reason"],
        },
        "predictors": [{"name": p, "description": descriptions.get(p, "")} for p in predictors],
        "ethnicity_as_predictor": train["ethnicity_as_predictor"],
        "missing_data": "Event counts default to 0 when a person has no such events (declared per feature); "
        "home-monitoring summaries stay missing when there are no readings and LightGBM routes "
        "them natively; the logistic baseline imputes medians.",
        "algorithm": {
            "type": "LightGBM gradient boosting with Platt calibration on held-out training people"
            if cfg.get("calibration") == "sigmoid"
            else "LightGBM with isotonic calibration",
            "hyperparameters": cfg.get("chosen"),
            "tuning": cfg.get("tuning"),
            "seed": cfg.get("seed"),
        },
        "performance_validation": performance,
        "comparators": comparators,
        "oracle": oracle,
        "subgroups": subgroups,
        "top_features": importance,
        "limitations": [
            "Validated on a later period of the same ICS (temporal validation), not on another ICS.",
            "Trained on recorded activity: people who use services less (or whose conditions go uncoded) may be "
            "under-estimated; see the fairness audit before use.",
            "Synthetic data: figures show the pipeline works; they are not evidence of clinical performance.",
        ],
        **(extra or {}),
    }


SUBGROUPS_WITHHELD = (
    "Figures by age, sex, deprivation and ethnicity are in the published bias report (the clinical safety "
    "officer's pack), under the disclosure-control policy."
)


def released(card: dict, policy: Policy) -> dict:
    """The card for a user who may see only aggregates under the disclosure-control policy: every count of people
    hidden when small and rounded, rates to the policy's decimals (a share flagged shown only when the true and
    false positives it implies are 0 or above the threshold), and no subgroup table (its exact counts and rates
    would undo the published bias report's suppression)."""
    out = json.loads(json.dumps(card, default=str))

    def counts(d: dict | None) -> dict:  # shown as JSON text: a hidden count as "*"
        return {k: "*" if policy.count(int(v)) is None else policy.count(int(v)) for k, v in (d or {}).items()}

    out["population"]["training"] = counts(card["population"]["training"])
    out["population"]["excluded_at_training"] = counts(card["population"]["excluded_at_training"])
    for k in ("censored_training", "censored_validation"):
        out["outcome"][k] = counts(card["outcome"][k])
    perf = {k: v for k, v in card["performance_validation"].items() if k not in ("calibration_curve", "decision_curve")}
    n, events = int(perf.get("n", 0)), int(perf.get("events", 0))
    perf["n"], perf["events"] = policy.count(n), policy.count(events)
    for k, v in perf.items():
        if isinstance(v, (float, list)) and k not in ("n", "events"):
            perf[k] = _rate(v, policy) if perf["events"] is not None else None
    top = []
    for row in card["performance_validation"].get("top_k", []):
        flagged, ppv = int(row["flagged"]), float(row["ppv"])
        tp = round(ppv * flagged)
        implied = (tp, flagged - tp, events - tp)  # true and false positives, outcomes missed
        safe = all(c == 0 or c > policy.suppress_max for c in implied) and perf["events"] is not None
        keep = {"share": row["share"], "flagged": policy.count(flagged)}
        top.append(keep | {k: policy.mean(row[k]) if safe else None for k in ("ppv", "sensitivity", "threshold")})
    perf["top_k"] = top
    out["performance_validation"] = perf
    if card.get("oracle"):
        out["oracle"] = {
            k: policy.count(int(v)) if k.startswith("rows") else _rate(v, policy) for k, v in card["oracle"].items()
        }
    out["subgroups"] = []
    out["subgroups_withheld"] = SUBGROUPS_WITHHELD
    return out


def _rate(v, policy: Policy):
    """A rate, or a list of them (an interval), to the policy's decimals."""
    if isinstance(v, list):
        return [_rate(x, policy) for x in v]
    return policy.mean(v) if isinstance(v, (int, float)) else v


def render_html(card: dict) -> str:
    """The card as a self-contained HTML page (template `model_card.html.j2`)."""
    perf = card["performance_validation"]
    headline = [
        {"measure": k, "value": perf[k]}
        for k in (
            "n",
            "events",
            "event_rate",
            "auroc",
            "auroc_ci",
            "auprc",
            "auprc_ci",
            "brier",
            "calibration_slope",
            "calibration_intercept",
        )
        if k in perf
    ]
    comparators = [{"score": k, **v} for k, v in card["comparators"].items()]
    data = [{"item": k, "value": json.dumps(v) if isinstance(v, (list, dict)) else v} for k, v in card["data"].items()]
    title = f"Model card: {card['model']}" + (f" version {card['version']}" if card["version"] else "")
    return render("model_card.html.j2", title=title, card=card, data=data, headline=headline, comparators=comparators)
