"""Model card with the TRIPOD+AI items that apply, as JSON and as a self-contained HTML page."""

from __future__ import annotations

import html
import json

from models.specs.base import ModelSpec

USERS = "Care coordinators (PCN and practice teams); reviewed by clinical safety officers; maintained by data scientists."


def build_card(*, spec: ModelSpec, version: int | None, run_id: str, cfg: dict, manifests: dict, predictors: list[str],
               descriptions: dict[str, str], performance: dict, comparators: dict, oracle: dict | None,
               subgroups: list[dict], importance: list[dict], extra: dict | None = None) -> dict:
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
            "validation_index_dates": [val["index_dates"][0], val["index_dates"][-1]] if len(val["index_dates"]) > 2
            else val["index_dates"],
            "feature_set": train["feature_set"],
            "feature_definition_hash": train["definition_hash"],
        },
        "population": {"rules": train["cohort"]["rules"], "training": train["cohort"]["eligible_by_index_date"],
                       "excluded_at_training": train["cohort"]["excluded_by_reason"]},
        "outcome": {"column": train["label"]["column"], "rules": train["label"]["rules"],
                    "censoring": "people who moved away without an outcome, or whose follow-up ran past the data, "
                                 "were excluded from training and validation (counted below)",
                    "censored_training": train["label"]["censored_by_reason"],
                    "censored_validation": val["label"]["censored_by_reason"]},
        "predictors": [{"name": p, "description": descriptions.get(p, "")} for p in predictors],
        "ethnicity_as_predictor": train["ethnicity_as_predictor"],
        "missing_data": "Event counts default to 0 when a person has no such events (declared per feature); "
                        "home-monitoring summaries stay missing when there are no readings and LightGBM routes "
                        "them natively; the logistic baseline imputes medians.",
        "algorithm": {"type": "LightGBM gradient boosting with Platt calibration on held-out training people"
                  if cfg.get("calibration") == "sigmoid" else "LightGBM with isotonic calibration",
                  "hyperparameters": cfg.get("chosen"), "tuning": cfg.get("tuning"), "seed": cfg.get("seed")},
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


def _table(rows: list[dict]) -> str:
    if not rows:
        return "<p>None.</p>"
    head = "".join(f"<th scope='col'>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)) and v and isinstance(v[0], float):
        return "(" + ", ".join(f"{x:.3f}" for x in v) + ")"
    return "" if v is None else str(v)


def render_html(card: dict) -> str:
    perf = card["performance_validation"]
    headline = [{"measure": k, "value": perf[k]} for k in
                ("n", "events", "event_rate", "auroc", "auroc_ci", "auprc", "auprc_ci", "brier", "calibration_slope",
                 "calibration_intercept") if k in perf]
    comparators = [{"score": k, **v} for k, v in card["comparators"].items()]
    data = [{"item": k, "value": json.dumps(v) if isinstance(v, (list, dict)) else v} for k, v in card["data"].items()]
    title = f"Model card: {card['model']}" + (f" version {card['version']}" if card["version"] else "")
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:Arial,sans-serif;margin:2rem;max-width:70rem;color:#212b32}}
table{{border-collapse:collapse;margin:.5rem 0 1.5rem}}th,td{{border:1px solid #d8dde0;padding:.3rem .6rem;text-align:left}}
th{{background:#005eb8;color:#fff}}h1,h2{{color:#005eb8}}</style></head><body>
<h1>{html.escape(title)}</h1>
<h2>Intended use</h2><p>{html.escape(card['intended_use'])}</p><p>{html.escape(card['intended_users'])}</p>
<h2>Data</h2>{_table(data)}
<h2>Population</h2><p>{html.escape(json.dumps(card['population']['rules']))}</p>
<h2>Outcome</h2><p>{html.escape(card['outcome']['column'])}: {html.escape(json.dumps(card['outcome']['rules']))}.
{html.escape(card['outcome']['censoring'])}: training {html.escape(json.dumps(card['outcome']['censored_training']))},
validation {html.escape(json.dumps(card['outcome']['censored_validation']))}.</p>
<h2>Model</h2><p>{html.escape(card['algorithm']['type'])}; hyperparameters
{html.escape(json.dumps(card['algorithm']['hyperparameters']))}; seed {card['algorithm']['seed']}.</p>
<h2>Performance on the validation period</h2>{_table(headline)}
<h2>Top 1%, 2% and 5% flagged</h2>{_table(perf.get('top_k', []))}
<h2>Compared with</h2>{_table(comparators)}
{'<h2>Against the best achievable (synthetic ground truth)</h2>' + _table([card['oracle']]) if card.get('oracle') else ''}
<h2>Subgroups</h2>{_table(card['subgroups'])}
<h2>Most important predictors</h2>{_table(card['top_features'])}
<h2>Missing data</h2><p>{html.escape(card['missing_data'])}</p>
<h2>Predictors ({len(card['predictors'])})</h2>{_table(card['predictors'])}
<h2>Limitations</h2><ul>{''.join(f'<li>{html.escape(x)}</li>' for x in card['limitations'])}</ul>
</body></html>"""
