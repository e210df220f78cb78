"""`phm audit scores` on a readmission score that over-predicts every group about 4x (as a new user found on a
real hospital score): flagged for calibration for everyone, with the overall AUROC shown, in words for another
tool; the same stays with the score divided back to the truth unflagged."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from support.cli import run as phm


def stays(path, inflate: float) -> None:
    rng = np.random.default_rng(11)
    n = 50_000
    group = rng.choice(["White", "Asian", "Black", "Mixed"], n, p=[0.75, 0.12, 0.08, 0.05])
    true = 1 / (1 + np.exp(-(-2.4 + rng.normal(0, 0.9, n))))
    pd.DataFrame(
        {
            "readmission_score": np.clip(true * inflate, 0, 1),
            "readmitted": (rng.random(n) < true).astype(int),
            "ethnic_group": group,
            "age": rng.integers(18, 95, n),
        }
    ).to_csv(path, index=False)


def test_phm_audit_scores_flags_a_score_miscalibrated_for_everyone(tmp_path) -> None:
    home = tmp_path / "home"
    for name, inflate in (("over", 4.0), ("calibrated", 1.0)):
        stays(tmp_path / f"{name}.csv", inflate)
        out = phm(
            "audit",
            "scores",
            str(tmp_path / f"{name}.csv"),
            "--score",
            "readmission_score",
            "--outcome",
            "readmitted",
            "--group",
            "ethnic_group",
            "--reference",
            "ethnic_group=White",
            "--name",
            name,
            "--draws",
            "200",
            home=home,
        )
        assert out.returncode == 0, out.stderr
        report = json.loads((home / "reports" / "audits" / name / "bias_report.json").read_text())
        auroc = report["absolute"]["metrics"]["auroc"]
        assert 0.6 < auroc["value"] < 0.8 and "Performance for everyone: AUROC" in out.stdout
        overall = [f for f in report["flags"] if f["grouping"] == "overall"]
        html = (home / "reports" / "audits" / name / "bias_report.html").read_text()
        if name == "over":
            assert [f["metric"] for f in overall] == ["observed_to_expected"] and 0.2 < overall[0]["ratio"] < 0.3
            assert "miscalibrated for everyone" in out.stdout and "Performance for everyone" in html
            assert "promoted" not in html and "worklists" not in html
        else:
            assert overall == [] and "calibrated for everyone" in html.lower()
