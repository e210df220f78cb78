"""The CSO pack on the real `phm` command and a real MLflow store (20,000-person synthetic ICS, a quickly trained
model): `phm audit pack` writes a DCB0160-style deployment record, a TRIPOD+AI checklist filled from the run with
its evidence (human items marked) and a bias report safe to publish, in which no count is under the threshold."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import pytest
from mlflow import MlflowClient

from evaluation.disclosure import Policy
from evaluation.fairness.config import AuditConfig
from evaluation.fairness.publish import every_count
from phm.core.settings import Settings
from serving.governance.model_audit import audit_model
from serving.governance.signoff import decide
from serving.users import Role, add_user
from support.cli import run as phm
from support.homes import trained_copy
from training import tracking

MODEL = "emergency_admission"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def audited(ics20k_loaded, tmp_path_factory) -> Settings:
    settings = trained_copy(ics20k_loaded[0], tmp_path_factory.mktemp("pack"))
    add_user(settings.home, "Dr Ada Jones", Role.safety_officer, [])
    audit_model(settings, MODEL, 1, AuditConfig(bootstrap_draws=50))
    return settings


def test_pack_before_and_after_sign_off(audited: Settings) -> None:
    out = phm("audit", "pack", "--model", "emergency-admission", "--version", "1", home=audited.home)
    assert out.returncode == 0, out.stderr
    folder = audited.reports_dir / "packs" / f"{MODEL}_v1"
    record = json.loads((folder / "deployment_record.json").read_text())
    assert record["sign_off"]["signed"] is False and "not" in (folder / "deployment_record.html").read_text()
    assert record["intended_purpose"].startswith("Rank adults") and record["users"]
    assert all(h["controls"] and h["risk_before"] >= h["risk_after"] for h in record["hazards"])
    assert record["residual_risk"]["rating"] == max(h["risk_after"] for h in record["hazards"])
    tracking.configure(audited)
    mv = MlflowClient().get_model_version(MODEL, "1")
    report = mv.tags["audit_report_sha256"]
    checklist = json.loads((folder / "tripod_ai.json").read_text())
    human = [i for i in checklist if i["source"] == "human"]
    filled = [i for i in checklist if i["source"] == "run"]
    assert human and all(i["evidence"] is None for i in human)
    assert len(filled) >= 15 and all(i["evidence"].startswith(f"runs:/{mv.run_id}/") for i in filled)
    assert [i for i in checklist if i["source"] == "missing"] == []
    auroc = next(i for i in filled if i["item"] == "12e")
    assert "AUROC 0." in auroc["answer"]
    # every linked evidence file exists in the run
    for link in {i["evidence"] for i in filled}:
        local = mlflow.artifacts.download_artifacts(link, dst_path=str(audited.home / "dl"))
        assert Path(local).stat().st_size > 0
    # the publishable bias report: disclosure control applied, no count under the threshold
    public = json.loads((folder / "public_bias_report.json").read_text())
    policy = Policy.from_settings(audited)
    counts = every_count(public)
    assert counts and all(c == 0 or c > policy.suppress_max for c in counts)
    assert all(c % policy.round_to == 0 for c in counts)
    full = json.loads((audited.reports_dir / "audits" / f"{MODEL}_v1" / "bias_report.json").read_text())
    small = {(g["name"], r["group"]) for g in full["groupings"] for r in g["groups"] if r["small"]}
    assert small  # the 20,000-person ICS has small groups: their figures are withheld
    for g in public["groupings"]:
        for r in g["groups"]:
            if (g["name"], r["group"]) in small or r["people"] is None:
                assert all(v is None for v in r["metrics"].values())
    assert public["report_sha256"] == report and "summary" not in public
    # after the CSO's approval, the record is signed
    decide(audited, MODEL, 1, "approved", "Dr Ada Jones", "controls in place", accept_flags=True)
    assert phm("audit", "pack", home=audited.home).returncode == 0  # default: the candidate (no champion yet)
    record = json.loads((folder / "deployment_record.json").read_text())
    assert record["sign_off"]["signed"] is True and record["sign_off"]["by"] == "Dr Ada Jones"
    logged = mlflow.artifacts.download_artifacts(
        run_id=mv.run_id, artifact_path=f"cso_pack/{report[:12]}", dst_path=str(audited.home / "dl2")
    )
    assert sorted(p.name for p in Path(logged).iterdir()) == sorted(p.name for p in folder.iterdir())


def test_pack_of_an_unaudited_version_is_a_clear_error(audited: Settings) -> None:
    out = phm("audit", "pack", "--model", "emergency-admission", "--version", "7", home=audited.home)
    assert out.returncode == 2 and "no version 7" in out.stderr and "Traceback" not in out.stderr


def test_an_altered_stored_report_is_refused_everywhere(audited: Settings) -> None:
    """The stored bias report edited after the audit (a flag and its hazard removed, its SHA-256 field kept): the
    pack, a decision and the API refuse it, naming it, instead of presenting it under the audited report's hash."""
    tracking.configure(audited)
    mv = MlflowClient().get_model_version(MODEL, "1")
    artifacts = Path(urlparse(MlflowClient().get_run(mv.run_id).info.artifact_uri).path)
    stored = artifacts / mv.tags["audit_report_artifact"] / "bias_report.json"  # the store's own file
    original = stored.read_text()
    report = json.loads(original)
    report["groupings"][0]["groups"][0]["metrics"]["tpr"]["value"] = 0.99
    report["flags"], report["hazards"] = [], []
    try:
        stored.write_text(json.dumps(report, indent=1))
        pack = phm("audit", "pack", "--model", "emergency-admission", "--version", "1", home=audited.home)
        assert pack.returncode == 2 and "altered or replaced after the audit" in pack.stderr, pack.stderr
        approve = phm(
            "audit", "approve", "--model", "emergency-admission", "--version", "1", "--by", "Dr Ada Jones",
            "--reason", "read it", "--accept-flags", home=audited.home,
        )  # fmt: skip
        assert approve.returncode == 2 and "altered or replaced" in approve.stderr and "Traceback" not in approve.stderr
    finally:
        stored.write_text(original)
    assert phm("audit", "pack", "--model", "emergency-admission", "--version", "1", home=audited.home).returncode == 0
