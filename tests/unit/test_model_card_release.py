"""The model card as a planner or care coordinator reads it: the one disclosure-control policy applied (found by
the disclosure red-team: the Models page served every role the card's exact validation counts, and by ethnicity
the exact outcomes the published bias report had hidden by secondary suppression)."""

from __future__ import annotations

import re

from evaluation.disclosure import Policy
from evaluation.model_card import SUBGROUPS_WITHHELD, released, render_html


def card() -> dict:
    """The shape `build_card` writes (figures from the demo's ACSC model, a small censoring count added)."""
    return {
        "model": "acsc_admission",
        "version": 1,
        "mlflow_run_id": "run",
        "intended_use": "Rank adults.",
        "intended_users": "Care coordinators.",
        "data": {"source": "PHM warehouse (synthetic ICS)"},
        "population": {
            "rules": {"min_age": 18},
            "training": {"2023-04-01": 33464},
            "excluded_at_training": {"below minimum age": 26099, "died": 3},
        },
        "outcome": {
            "column": "label_acsc_12m",
            "rules": {"outcome": "emergency"},
            "censoring": "moved away",
            "censored_training": {"moved away": 2074},
            "censored_validation": {"moved away": 6},
        },
        "predictors": [{"name": "age", "description": "age"}],
        "ethnicity_as_predictor": False,
        "missing_data": "none",
        "algorithm": {"type": "LightGBM", "hyperparameters": {}, "seed": 1},
        "performance_validation": {
            "n": 33014,
            "events": 704,
            "event_rate": 0.021324286666262796,
            "auroc": 0.9322795767564221,
            "auroc_ci": [0.918028962819988, 0.9411562760979806],
            "calibration_curve": [{"mean_predicted": 0.00145, "observed": 0.0003028467595396729, "n": 3302}],
            "top_k": [
                {"share": 0.01, "flagged": 330, "ppv": 0.5969696969696969, "sensitivity": 0.2798, "threshold": 0.488},
                {"share": 0.001, "flagged": 33, "ppv": 0.8787878787878788, "sensitivity": 0.0412, "threshold": 0.9},
            ],
        },
        "comparators": {"baseline": {"auroc": 0.929}},
        "oracle": {"rows_with_truth": 33014, "oracle_auroc": 0.942123577347289},
        "subgroups": [
            {"grouping": "ethnicity", "group": "Mixed", "n": 714, "events": 10, "observed": 0.01401, "auroc": 0.92},
            {"grouping": "ethnicity", "group": "Other", "n": 7, "events": 1, "observed": 0.1428, "auroc": None},
        ],
        "top_features": [],
        "limitations": [],
    }


def numbers(html: str) -> set[str]:
    return set(re.findall(r"(?<![\w.])\d[\d,]*(?:\.\d+)?", re.sub(r"<[^>]+>", " ", html)))


def test_the_released_card_shows_no_exact_or_small_count() -> None:
    policy = Policy()
    exact = render_html(card())
    assert {"33014", "704", "714", "0.01401"} <= numbers(exact)  # the card as logged, for data scientists
    out = released(card(), policy)
    html = render_html(out)
    shown = numbers(html)
    assert not {"33014", "33464", "26099", "2074", "704", "714"} & shown
    assert {"33015", "2075", "705", "330"} <= shown
    assert out["population"]["training"] == {"2023-04-01": 33465}
    assert out["population"]["excluded_at_training"] == {"below minimum age": 26100, "died": "*"}
    assert out["outcome"]["censored_validation"]["moved away"] == "*"
    assert (
        out["performance_validation"]["event_rate"] == 0.021
        and "calibration_curve" not in out["performance_validation"]
    )
    assert out["performance_validation"]["auroc_ci"] == [0.918, 0.941]
    small_top = out["performance_validation"]["top_k"][1]  # 33 flagged, 4 of them without the outcome
    assert small_top["flagged"] == 35 and small_top["ppv"] is None and small_top["sensitivity"] is None
    assert (
        out["subgroups"] == [] and out["subgroups_withheld"] == SUBGROUPS_WITHHELD and "published bias report" in html
    )
    assert out["oracle"]["rows_with_truth"] == 33015
