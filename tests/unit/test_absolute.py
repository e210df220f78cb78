"""Performance for everyone beside the ratios: an external score table that over-predicts every group 4x is
flagged for calibration with its overall AUROC shown, in words fit for another tool; a calibrated one is not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from evaluation.fairness import report_html
from evaluation.fairness.config import AuditConfig
from evaluation.fairness.external import audit_table
from evaluation.metrics import calibration_slope_intercept


def scores_file(tmp_path, inflate: float, n: int = 30_000, seed: int = 0):
    """Stays with a true readmission risk of ~10% in every group; the tool's score is `inflate` x the true risk."""
    rng = np.random.default_rng(seed)
    group = rng.choice(np.array(["A", "B", "C"]), n, p=[0.6, 0.25, 0.15])
    lin = -2.4 + rng.normal(0, 0.8, n)  # the same risk in every group: only the absolute check can fail
    true = 1 / (1 + np.exp(-lin))
    y = (rng.random(n) < true).astype(int)
    frame = pd.DataFrame({"score": np.clip(true * inflate, 0, 1), "readmitted": y, "group": group})
    path = tmp_path / "stays.csv"
    frame.to_csv(path, index=False)
    return path, frame


def audit(path):
    return audit_table(
        path,
        score="score",
        outcome="readmitted",
        groups=["group"],
        references={"group": "A"},
        name="vendor tool",
        cfg=AuditConfig(bootstrap_draws=200),
    )[0]


def test_over_prediction_for_everyone_is_flagged_with_auroc(tmp_path) -> None:
    path, frame = scores_file(tmp_path, inflate=4.0)
    result = audit(path)
    m = result.absolute.metrics
    assert m["auroc"].value == pytest.approx(roc_auc_score(frame.readmitted, frame.score), abs=1e-9)
    assert m["auroc"].ci[0] < m["auroc"].value < m["auroc"].ci[1]
    assert m["observed_to_expected"].value == pytest.approx(frame.readmitted.sum() / frame.score.sum(), rel=1e-9)
    slope, citl = calibration_slope_intercept(frame.readmitted.to_numpy(), frame.score.to_numpy())
    assert m["calibration_in_the_large"].value == pytest.approx(citl, abs=1e-9)
    assert m["calibration_slope"].value == pytest.approx(slope, abs=1e-9)
    assert 0.2 < m["observed_to_expected"].value < 0.3
    assert [f.metric for f in result.flags if f.grouping == "overall"] == ["observed_to_expected"]
    # between groups the ratios are fine: only the absolute check sees it
    assert not [f for f in result.flags if f.grouping != "overall"]
    words = " ".join(result.summary)
    assert "miscalibrated for everyone" in words and "AUROC" in words
    html = report_html.render(result)
    assert "Performance for everyone" in html
    for text in (html, words, " ".join(h.effect + h.residual_risk for h in result.hazards)):
        assert "worklists" not in text and "promoted" not in text


def test_calibrated_table_is_not_flagged(tmp_path) -> None:
    path, _ = scores_file(tmp_path, inflate=1.0, seed=1)
    result = audit(path)
    assert (
        result.absolute.metrics["observed_to_expected"].ci[0]
        < 1
        < result.absolute.metrics["observed_to_expected"].ci[1]
    )
    assert result.absolute.flags == [] and result.passed
