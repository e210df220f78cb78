"""Training jobs against a real MLflow SQLite store on a 20,000-person synthetic ICS."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from evaluation.metrics import auroc, calibration_slope_intercept, evaluate, net_benefit, top_k
from training.train_validate import run
from models.explain import phrase, reasons
from support.homes import copied_home
from phm.core.settings import Settings
from training import registry, tracking
from training.config import default_config


@pytest.fixture(scope="module")
def home(ics20k_loaded, tmp_path_factory) -> Settings:
    """A PHM home with the 20k warehouse and its own MLflow store."""
    return copied_home(ics20k_loaded[0], tmp_path_factory.mktemp("train_home"))


@pytest.fixture(scope="module")
def emergency(home):
    return run(default_config("emergency_admission"), home)


@pytest.fixture(scope="module")
def flare(home):
    return run(default_config("flare_up"), home)


@pytest.fixture(scope="module")
def acsc(home):
    return run(default_config("acsc_admission"), home)


def test_emergency_model_beats_baselines_and_approaches_the_oracle(emergency) -> None:
    m = emergency.metrics
    assert m["val_auroc"] > m["rule_auroc"] + 0.05 and m["baseline_auroc"] > m["rule_auroc"] + 0.05
    # with ~900 validation events an AUROC's standard error is ~0.007: boosting and the logistic baseline tie here
    # (0.816 against 0.817 after the ACSC diagnoses changed the generator); the 1M-person benchmark separates them
    assert m["val_auroc"] > m["baseline_auroc"] - 0.01
    assert m["model_oracle_ratio"] > 0.95  # the 1M-person benchmark records the full figure (>= 0.97)
    assert 0.85 < m["val_calibration_slope"] < 1.15
    assert abs(m["val_calibration_intercept"]) < 0.2
    assert m["val_auroc_ci_low"] < m["val_auroc"] < m["val_auroc_ci_high"]
    assert m["val_ppv_top_1pct"] > m["val_ppv_top_5pct"] > m["val_event_rate"]


def test_flare_model_beats_the_symptom_rule_and_warns_ahead(flare) -> None:
    m = flare.metrics
    assert m["val_auroc"] > m["rule_auroc"] + 0.1
    warnings = flare.card["warnings"]["model"]
    assert warnings["events"] > 20 and warnings["share_warned"] > 0.5
    assert 1 <= m["warn_median_lead_days"] <= 14
    assert m["warn_share"] > m["rule_warn_share"]


def test_acsc_model_approaches_its_oracle(acsc) -> None:
    """The third model, added as one specification module: its oracle is the generator's true probability of an
    emergency admission for an ambulatory care sensitive condition (truth/acsc_12m)."""
    m, oracle = acsc.metrics, acsc.card["oracle"]
    assert oracle["rows_with_truth"] == m["val_n"]  # every validation person has a true probability
    assert 0.85 < m["oracle_auroc"] < 0.98
    assert m["model_oracle_ratio"] > 0.96  # 0.989 on 50,000 people (the report of issue 23)
    assert m["val_auroc"] > m["rule_auroc"] + 0.1  # far better than counting last year's ACSC admissions
    assert 0.8 < m["val_calibration_slope"] < 1.2
    assert 0.01 < m["val_event_rate"] < 0.03  # ~2% of adults a year (one in five emergency admissions)


def test_registered_with_alias_and_loadable_by_alias(home, emergency) -> None:
    tracking.configure(home)
    assert home.mlflow_tracking_uri.startswith("sqlite:///") and str(home.home) in home.mlflow_tracking_uri
    found = {(v.name, v.version): v for v in registry.versions()}
    v = found[("emergency_admission", emergency.version)]
    assert "candidate" in v.aliases and v.status == "not audited"
    model = registry.load("emergency_admission", "candidate")
    features = pd.read_parquet(home.features_dir / "emergency_admission_validation.parquet").head(200)
    predictors = model.metadata.get_input_schema().input_names()
    out = model.predict(features[predictors].astype("float64"))
    assert list(out.columns) == ["risk"] and len(out) == 200
    assert out.risk.between(0, 1).all() and out.risk.std() > 0
    # the registered model gives exactly the probabilities the run validated
    run_dir = Path(mlflow.get_run(emergency.run_id).info.artifact_uri.removeprefix("file://"))
    card = json.loads((run_dir / "model_card" / "model_card.json").read_text())
    assert card["version"] == emergency.version and card["oracle"]["model_oracle_ratio"] > 0.9
    for item in (
        "intended_use",
        "data",
        "population",
        "outcome",
        "predictors",
        "missing_data",
        "performance_validation",
        "subgroups",
        "limitations",
    ):
        assert card[item], item
    assert (run_dir / "model_card" / "model_card.html").read_text().count("<table>") >= 5
    for plot in ("roc", "precision_recall", "calibration", "decision_curve", "feature_importance"):
        assert (run_dir / "plots" / f"{plot}.png").stat().st_size > 5_000
    manifest = json.loads((run_dir / "features" / "train_manifest.json").read_text())
    assert mlflow.get_run(emergency.run_id).data.params["feature_definition_hash"] == manifest["definition_hash"]


def test_same_seed_same_metrics_and_reproducible_from_mlflow(home, emergency) -> None:
    again = run(default_config("emergency_admission"), home)
    assert again.version == emergency.version + 1 or again.version > emergency.version
    for key in ("val_auroc", "val_brier", "val_calibration_slope", "baseline_auroc", "val_auroc_ci_low"):
        assert again.metrics[key] == pytest.approx(emergency.metrics[key], abs=1e-12), key
    # the recorded configuration reproduces the run
    run_dir = Path(mlflow.get_run(emergency.run_id).info.artifact_uri.removeprefix("file://"))
    from training.config import TrainConfig

    recorded = TrainConfig.model_validate_json((run_dir / "train_config.json").read_text())
    d = emergency.config.spec.training  # dates follow the data: on the synthetic ICS, the specification's own
    assert (
        recorded
        == emergency.config
        == default_config("emergency_admission").model_copy(
            update={"train_dates": list(d.train_dates), "validation_dates": list(d.validation_dates)}
        )
    )
    assert "phm train emergency-admission --config" in mlflow.get_run(emergency.run_id).data.tags["phm.reproduce"]


def test_explanations_in_plain_words(home, emergency) -> None:
    model = registry.load("emergency_admission", "candidate").unwrap_python_model().model
    features = pd.read_parquet(home.features_dir / "emergency_admission_validation.parquet")
    X = features[list(model.feature_names_in_)].astype("float64")
    top = X.iloc[np.argsort(-model.predict_proba(X)[:, 1])[:20]]
    why = reasons(model, top)
    assert all(1 <= len(r) <= 3 for r in why)
    assert all(r[0]["log_odds"] > 0 and r[0]["words"] for r in why)
    words = " ".join(r["words"] for rs in why for r in rs)
    assert "emergency admission" in words or "long-term condition" in words or "aged" in words
    assert phrase("emergency_admissions_12m", 3) == "3 emergency admission(s) in the last year"
    assert phrase("ltc_copd", 1) == "has COPD"
    assert phrase("hm_spo2_slope_7d", -0.5) == "oxygen saturation falling by 0.50 a day over the last 7 days"


def test_metric_functions_on_known_values() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(0.01, 0.6, 20_000)
    y = (rng.random(p.size) < p).astype(int)
    slope, intercept = calibration_slope_intercept(y, p)
    assert slope == pytest.approx(1, abs=0.08) and intercept == pytest.approx(0, abs=0.05)
    slope2, _ = calibration_slope_intercept(y, 1 / (1 + np.exp(-2 * np.log(p / (1 - p)))))  # over-confident
    assert slope2 == pytest.approx(0.5, abs=0.05)
    assert auroc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    nb = net_benefit(y, p, np.array([0.05, 0.3]))
    assert nb[0]["treat_all"] == pytest.approx(y.mean() - (1 - y.mean()) * 0.05 / 0.95)
    assert nb[1]["model"] > nb[1]["treat_all"]
    tk = top_k(y, p, (0.01,))[0]
    assert tk["flagged"] == 200 and tk["ppv"] > y.mean()
    perf = evaluate(y, p, draws=30)
    assert perf.auroc_ci[0] < perf.auroc < perf.auroc_ci[1]
    assert len(perf.calibration_curve) == 10


def test_fast_bootstrap_agrees_with_resampling() -> None:
    from evaluation.metrics import auprc, bootstrap_ci, bootstrap_discrimination

    rng = np.random.default_rng(7)
    p = np.round(rng.uniform(0, 1, 4_000), 2)  # ties on purpose
    y = (rng.random(p.size) < p * 0.3).astype(int)
    (a_lo, a_hi), (p_lo, p_hi) = bootstrap_discrimination(y, p, draws=300, seed=2)
    r_lo, r_hi = bootstrap_ci(y, p, auroc, draws=300, seed=3)
    s_lo, s_hi = bootstrap_ci(y, p, auprc, draws=300, seed=3)
    assert a_lo < auroc(y, p) < a_hi and p_lo < auprc(y, p) < p_hi
    assert abs(a_lo - r_lo) < 0.01 and abs(a_hi - r_hi) < 0.01
    assert abs(p_lo - s_lo) < 0.015 and abs(p_hi - s_hi) < 0.015
