"""Acceptance of the fairness audit, on 50,000-person synthetic ICSs with and without the generator's knob that
leaves diagnoses of one ethnic group uncoded, against a real MLflow store, the real `phm` command and real
headless Chromium. (The sign-off and the promotion gate are tested in tests/integration/test_signoff.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from evaluation.fairness.config import AuditConfig
from serving.governance.model_audit import audit_model
from training.train_validate import run as train
from features.sources.loader import load
from features.synthetic.config import DefectConfig, GeneratorConfig
from features.synthetic.generator import generate
from phm.core.settings import Settings
from support.browser import render
from support.cli import run as phm
from training import tracking
from training.config import TuningGrid, default_config

MODEL = "emergency_admission"
ETHNIC = ("ethnicity_broad", "ethnicity", "ethnicity_x_deprivation")


def trained_home(root: Path, defects: DefectConfig) -> Settings:
    settings = Settings(home=root / "home")
    generate(GeneratorConfig(persons=50_000, seed=1, defects=defects), root / "ics")
    load(settings, root / "ics")
    cfg = default_config(MODEL).model_copy(
        update={"grid": TuningGrid(num_leaves=[15], min_child_samples=[100]), "bootstrap_draws": 50}
    )
    train(cfg, settings)
    return settings


@pytest.fixture(scope="module")
def knob(tmp_path_factory) -> Settings:
    """Diagnoses of Asian patients are never coded by their GP (hospital records are unaffected)."""
    return trained_home(
        tmp_path_factory.mktemp("knob"), DefectConfig(under_record_group="Asian", under_record_share=1.0)
    )


@pytest.fixture(scope="module")
def parity(tmp_path_factory) -> Settings:
    return trained_home(tmp_path_factory.mktemp("parity"), DefectConfig())


@pytest.fixture(scope="module")
def knob_audit(knob):
    return audit_model(knob, MODEL, 1, AuditConfig(bootstrap_draws=300, mitigation="group_thresholds"))


def test_under_recorded_group_is_flagged_and_the_report_says_so(knob, knob_audit) -> None:
    result = knob_audit.result
    flags = {(f.grouping, f.group, f.metric): f for f in result.flags}
    assert ("ethnicity_broad", "Asian", "tpr") in flags
    tpr = flags[("ethnicity_broad", "Asian", "tpr")]
    assert tpr.ratio < 0.8 and tpr.ratio_ci[1] < 1 and tpr.adjusted_ratio < 0.8 and tpr.reference_group == "White"
    calibration = next(
        c
        for g in result.groupings
        if g.name == "ethnicity_broad"
        for c in g.comparisons
        if c.group == "Asian" and c.metric == "predicted_to_observed"
    )
    assert calibration.ratio < 0.85 and calibration.ratio_ci[1] < 1  # under-prediction
    text = " ".join(result.summary)
    assert "**Asian**" in text and "less likely to be offered it" in text and "under-predicts" in text
    assert "also coded by the GP" in text  # the coverage table points at the cause
    coverage = {r["group"]: r for g in result.groupings if g.name == "ethnicity_broad" for r in g.coverage}
    assert coverage["Asian"]["gp_coding_completeness"] == 0 and coverage["White"]["gp_coding_completeness"] > 0.5
    assert any("Asian" in h.hazard for h in result.hazards)
    # logged to the version: tags and the report in MLflow, byte-identical to the local copies
    tracking.configure(knob)
    tags = MlflowClient().get_model_version(MODEL, "1").tags
    assert tags["audit_status"] == f"flagged ({len(result.flags)})"
    assert tags["audit_report_sha256"] == result.report_sha256 == result.content_hash()
    run_id = MlflowClient().get_model_version(MODEL, "1").run_id
    logged = Path(
        mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=knob_audit.artifact_path, dst_path=str(knob.home / "dl")
        )
    )
    assert (logged / "bias_report.html").read_bytes() == knob_audit.html_path.read_bytes()
    twin = json.loads((logged / "bias_report.json").read_text())
    assert twin["report_sha256"] == result.report_sha256 and len(twin["flags"]) == len(result.flags)
    # the mitigation is shown beside the unmitigated results and moves the group towards parity
    asian = next(r for r in result.mitigation.rows if r.group == "Asian")
    assert asian.after["tpr"] > asian.before["tpr"]


def test_without_the_knob_no_false_alarm(parity) -> None:
    result = audit_model(parity, MODEL, 1, AuditConfig(bootstrap_draws=300)).result
    assert not [f for f in result.flags if f.grouping in ETHNIC], result.flags
    # intervals are simultaneous per grouping: chance allows at most a stray flag across all groupings
    assert len({f.grouping for f in result.flags}) <= 1
    asian = next(
        c
        for g in result.groupings
        if g.name == "ethnicity_broad"
        for c in g.comparisons
        if c.group == "Asian" and c.metric == "tpr"
    )
    assert asian.ratio_ci[0] <= 1 <= asian.ratio_ci[1] or 0.8 <= asian.ratio <= 1.25


def test_bias_report_renders_in_headless_chromium(knob_audit, tmp_path) -> None:
    shot = tmp_path / "bias_report.png"
    page = render(knob_audit.html_path.as_uri(), shot)
    assert page.errors == [] and page.failed_requests == []
    assert page.title.startswith("Bias report: emergency_admission version 1")
    assert "flag(s) need a decision" in page.text and "Asian" in page.text and "Hazards raised" in page.text
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000 and page.height > 2_000


def test_audit_any_scores_table_with_quarantine(tmp_path) -> None:
    rng = np.random.default_rng(3)
    n = 30_000
    group = rng.choice(["Group A", "Group B", "Group C"], n, p=[0.7, 0.2, 0.1])
    age = rng.integers(18, 95, n)
    true = 1 / (1 + np.exp(-(-4 + 0.04 * (age - 18) + rng.normal(0, 1, n))))
    outcome = (rng.random(n) < true).astype(int)
    score = np.round(100 * np.where(group == "Group B", true * 0.5, true), 3)  # a 0-100 commercial score
    frame = pd.DataFrame(
        {"tool_score": score, "admitted": outcome, "ethnic_group": group, "age": age, "sex": rng.choice(["F", "M"], n)}
    )
    frame.loc[5, "tool_score"] = np.nan
    frame.loc[9, "admitted"] = 2
    path = tmp_path / "vendor_scores.csv"
    frame.to_csv(path, index=False)
    home = tmp_path / "home"
    out = phm(
        "audit",
        "scores",
        str(path),
        "--score",
        "tool_score",
        "--outcome",
        "admitted",
        "--group",
        "ethnic_group",
        "--reference",
        "ethnic_group=Group A",
        "--age",
        "age",
        "--sex",
        "sex",
        "--name",
        "vendor_tool",
        "--draws",
        "200",
        home=home,
    )
    assert out.returncode == 0, out.stderr
    folder = home / "reports" / "audits" / "vendor_tool"
    report = json.loads((folder / "bias_report.json").read_text())
    assert report["subject"]["source"] == str(path) and report["population"]["scores_are_probabilities"] is False
    assert {(f["group"], f["metric"]) for f in report["flags"]} == {("Group B", "tpr")}
    assert "Group B" in (folder / "bias_report.html").read_text()
    quarantined = pd.read_csv(folder / "quarantine.csv")
    assert quarantined.source_row.tolist() == [7, 11]  # file lines, counting the header
    assert quarantined.quarantine_reason.tolist() == ["tool_score: missing or not a number", "admitted: not 0 or 1"]
    assert "2 row(s) could not be audited" in out.stdout
    missing = phm(
        "audit", "scores", str(path), "--score", "risk", "--outcome", "admitted", "--group", "ethnic_group", home=home
    )
    assert missing.returncode == 2 and "missing column(s) ['risk']" in missing.stderr
