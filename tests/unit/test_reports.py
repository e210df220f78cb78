"""The one HTML path for reports: templates escape every value, refuse an undefined name, and the model card and
data-quality report render from them."""

from __future__ import annotations

import pytest
from jinja2 import UndefinedError

from evaluation.model_card import render_html
from phm.core.reports import cell, render

HOSTILE = "<script>alert(1)</script>"


def _card() -> dict:
    return {
        "model": "m",
        "version": 3,
        "intended_use": HOSTILE,
        "intended_users": "coordinators",
        "data": {"feature_set": "core", "training_index_dates": ["2023-01-01", "2023-04-01"]},
        "population": {"rules": ["aged 18+"]},
        "outcome": {
            "column": "y",
            "rules": ["emergency"],
            "censoring": "moved away",
            "censored_training": {"moved": 2},
            "censored_validation": {"moved": 1},
        },
        "algorithm": {"type": "LightGBM", "hyperparameters": {"num_leaves": 15}, "seed": 7},
        "performance_validation": {"n": 100, "auroc": 0.81234567, "auroc_ci": [0.7712, 0.8543]},
        "comparators": {"rule": {"auroc": 0.7}},
        "oracle": None,
        "subgroups": [],
        "top_features": [],
        "missing_data": "none",
        "predictors": [{"name": "age", "description": "age in years"}],
        "limitations": ["synthetic"],
    }


def test_values_are_escaped_and_formatted() -> None:
    page = render_html(_card())
    assert HOSTILE not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<title>Model card: m version 3</title>" in page
    assert "<td>0.8123</td>" in page and "<td>(0.771, 0.854)</td>" in page  # 4 significant figures; intervals
    assert '["2023-01-01", "2023-04-01"]' in page.replace("&#34;", '"')
    assert "Against the best achievable" not in page  # no oracle, no section


def test_an_undefined_name_is_an_error_not_a_blank() -> None:
    with pytest.raises(UndefinedError):
        render("model_card.html.j2", title="x")


def test_cells() -> None:
    assert cell(None) == "" and cell(1.0 / 3) == "0.3333" and cell([0.1, 0.25]) == "(0.100, 0.250)"
    assert cell({"a": 1}) == '{"a": 1}' and cell(12) == "12"
