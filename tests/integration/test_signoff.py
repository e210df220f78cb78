"""The promotion gate and the safety case on the real `phm` command, a real MLflow store, real DuckDB and the daily
job, on a copy of the 20,000-person synthetic ICS with a quickly trained model:

* every promotion needs a named, registered safety officer's approval of the exact current report (flagged or
  not); a rejection is final for that report, also for another officer; a new audit reopens the decision;
  `--by` is required;
* changing the band cut-offs, the operating policy or a feature definition after approval stops the daily job,
  naming the difference, until a safety officer approves the change (a change-impact review in the hazard log);
  rewording a feature's description changes nothing;
* a misspelled configuration key fails with its name.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from mlflow import MlflowClient

from phm.core.settings import Settings
from serving.batch.store import current_folder
from serving.governance import hazard_log
from serving.governance.hazard_log import hazard_log_path
from serving.users import Role, add_user
from support.cli import run as phm
from support.homes import approved_champion, registry_copy, trained_copy
from support.source import changed_feature_window, reworded_feature
from training import tracking

MODEL = "emergency_admission"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(ics20k_loaded, tmp_path_factory) -> Settings:
    """A home with version 1 of the worklist model trained and registered (not audited)."""
    return trained_copy(ics20k_loaded[0], tmp_path_factory.mktemp("signoff_trained"))


def fresh(trained: Settings, root: Path) -> Settings:
    """A copy of the trained home with a safety officer, another one, a data scientist and a coordinator."""
    home = registry_copy(trained, root)
    for name, role, scope in (
        ("Dr Ada Jones", Role.safety_officer, []),
        ("Dr Sam Patel", Role.safety_officer, []),
        ("Dee Scientist", Role.data_scientist, []),
        ("Cy Coordinator", Role.coordinator, ["X1"]),
    ):
        add_user(home.home, name, role, scope)
    return home


def report_of(home: Settings, version: int = 1) -> str:
    tracking.configure(home)
    return MlflowClient().get_model_version(MODEL, str(version)).tags["audit_report_sha256"]


def test_every_promotion_needs_a_named_safety_officers_approval_of_the_exact_report(trained, tmp_path) -> None:
    home = fresh(trained, tmp_path / "home")
    h = home.home
    wide = tmp_path / "no_flags.json"  # an audit that cannot flag: the gate must still want a person's decision
    wide.write_text(json.dumps({"flag_metrics": [], "bootstrap_draws": 50}))
    audited = phm("audit", "run", "--model", MODEL, "--version", "1", "--config", str(wide), home=h)
    assert audited.returncode == 0, audited.stderr
    first = report_of(home)
    flags = int(MlflowClient().get_model_version(MODEL, "1").tags["audit_flags"])

    missing_by = phm("models", "promote", "--model", MODEL, "--version", "1", home=h)
    assert missing_by.returncode == 2 and "Missing option '--by'" in missing_by.stderr
    unapproved = phm("models", "promote", "--model", MODEL, "--version", "1", "--by", "Dee Scientist", home=h)
    assert unapproved.returncode == 2 and "must approve" in unapproved.stderr, unapproved.stderr
    if flags == 0:
        assert "passed its audit, but no clinical safety officer has approved" in unapproved.stderr
    nobody = phm("models", "promote", "--model", MODEL, "--version", "1", "--by", "unknown", home=h)
    assert (
        nobody.returncode == 2
        and "--by 'unknown' is not a registered data scientist or safety officer" in nobody.stderr
    )

    not_a_cso = phm(
        "audit",
        "approve",
        "--model",
        MODEL,
        "--version",
        "1",
        "--by",
        "Cy Coordinator",
        "--reason",
        "looks fine",
        "--accept-flags",
        home=h,
    )
    assert not_a_cso.returncode == 2 and "is a coordinator, not a clinical safety officer" in not_a_cso.stderr
    rejected = phm(
        "audit",
        "reject",
        "--model",
        MODEL,
        "--version",
        "1",
        "--by",
        "Dr Sam Patel",
        "--reason",
        "Calibration in the oldest age band not shown",
        "--report",
        first[:12],
        home=h,
    )
    assert rejected.returncode == 0, rejected.stderr
    other = phm(
        "audit",
        "approve",
        "--model",
        MODEL,
        "--version",
        "1",
        "--by",
        "Dr Ada Jones",
        "--reason",
        "I disagree with my colleague",
        "--accept-flags",
        home=h,
    )
    assert other.returncode == 2 and "rejected by Dr Sam Patel" in other.stderr and "final" in other.stderr
    refused = phm("models", "promote", "--model", MODEL, "--version", "1", "--by", "Dee Scientist", home=h)
    assert refused.returncode == 2 and "rejected by Dr Sam Patel" in refused.stderr

    again = phm("audit", "run", "--model", MODEL, "--version", "1", "--config", str(wide), home=h)  # reopens
    assert again.returncode == 0, again.stderr
    second = report_of(home)
    assert second != first
    stale = phm(
        "audit",
        "approve",
        "--model",
        MODEL,
        "--version",
        "1",
        "--by",
        "Dr Ada Jones",
        "--reason",
        "read the report",
        "--accept-flags",
        "--report",
        first[:12],
        home=h,
    )
    assert stale.returncode == 2 and "is not the current report" in stale.stderr
    approved = phm(
        "audit",
        "approve",
        "--model",
        MODEL,
        "--version",
        "1",
        "--by",
        "Dr Ada Jones",
        "--reason",
        "New audit read; controls in place",
        "--accept-flags",
        "--report",
        second[:16],
        home=h,
    )
    assert approved.returncode == 0, approved.stderr
    promoted = phm("models", "promote", "--model", MODEL, "--version", "1", "--by", "Dee Scientist", home=h)
    assert promoted.returncode == 0, promoted.stderr
    assert str(MlflowClient().get_model_version_by_alias(MODEL, "champion").version) == "1"

    decisions = [e for e in hazard_log.read(hazard_log_path(home)) if e["kind"] == "decision"]
    assert [(e["decision"], e["by"], e["report_sha256"]) for e in decisions] == [
        ("rejected", "Dr Sam Patel", first),
        ("approved", "Dr Ada Jones", second),
    ]
    assert decisions[1]["via"] == "cli" and decisions[1]["configuration"]["model"] == MODEL
    assert decisions[1]["configuration"]["bands"] == {"very high": 0.005, "high": 0.02, "raised": 0.05}
    promotion = [e for e in hazard_log.read(hazard_log_path(home)) if e["kind"] == "promotion"][-1]
    assert promotion["by"] == "Dee Scientist" and promotion["report_sha256"] == second
    log = phm("audit", "log", home=h)
    assert log.returncode == 0 and "Hazard log intact" in log.stdout and "rejected by Dr Sam Patel" in log.stdout


def test_changed_band_cut_offs_or_policy_stop_the_daily_job_until_approved(trained, tmp_path) -> None:
    home = fresh(trained, tmp_path / "home")
    h = home.home
    approved_champion(home)
    first = phm("score", "daily", home=h)
    assert first.returncode == 0, first.stderr
    assert "Scored under the configuration approved by Dr Ada Jones" in first.stdout
    pointer = current_folder(home)

    (h / "phm.toml").write_text(
        '[policy.emergency_admission]\nbands = { "very high" = 0.005, high = 0.02, raised = 0.10 }\n'
    )
    refused = phm("score", "daily", home=h)
    assert refused.returncode == 2
    assert "band cut-offs: raised top 5% → 10%" in refused.stderr
    assert "operating policy: acts on the top 5% → the top 10%" in refused.stderr
    assert "approve-change" in refused.stderr and current_folder(home) == pointer  # yesterday's snapshot stays
    status = phm("audit", "status", "--model", MODEL, home=h)
    assert status.returncode == 0 and "may not be used" in status.stdout and "raised top 5% → 10%" in status.stdout

    not_a_cso = phm("audit", "approve-change", "--model", MODEL, "--by", "Dee Scientist", "--reason", "ok", home=h)
    assert not_a_cso.returncode == 2 and "not a clinical safety officer" in not_a_cso.stderr
    review = phm(
        "audit",
        "approve-change",
        "--model",
        MODEL,
        "--by",
        "Dr Ada Jones",
        "--reason",
        "Capacity for twice as many contacts agreed with the PCNs",
        home=h,
    )
    assert review.returncode == 0, review.stderr
    assert "raised top 5% → 10%" in review.stdout
    scored = phm("score", "daily", home=h)
    assert scored.returncode == 0, scored.stderr
    meta = json.loads((current_folder(home) / "manifest.json").read_text())
    assert meta["bands"] == {"very high": 0.005, "high": 0.02, "raised": 0.1}
    banded = sum(v for k, v in meta["band_counts"].items() if k != "routine")
    assert banded == -(-meta["people"] // 10)  # exactly the top 10% (rounded up) now carry a band
    worklist = meta["models"][MODEL]
    assert worklist["approved_by"] == "Dr Ada Jones" and worklist["top_share"] == 0.1
    review_entry = [e for e in hazard_log.read(hazard_log_path(home)) if e["kind"] == "change_review"][-1]
    assert review_entry["configuration_sha256"] == worklist["configuration_sha256"]
    assert review_entry["differences"][0] == "band cut-offs: raised top 5% → 10%"

    (h / "phm.toml").write_text(
        '[policy.emergency_admission]\nbands = { "very high" = 0.005, high = 0.02, raised = 0.10 }\ntop_share = 0.02\n'
    )
    policy = phm("score", "daily", home=h)
    assert policy.returncode == 2 and "operating policy: acts on the top 10% → the top 2%" in policy.stderr
    reject = phm(
        "audit",
        "reject-change",
        "--model",
        MODEL,
        "--by",
        "Dr Sam Patel",
        "--reason",
        "Reaching only 2% leaves known high-need patients off the worklist",
        home=h,
    )
    assert reject.returncode == 0, reject.stderr
    overrule = phm("audit", "approve-change", "--model", MODEL, "--by", "Dr Ada Jones", "--reason", "fine", home=h)
    assert overrule.returncode == 2 and "was rejected by Dr Sam Patel" in overrule.stderr
    still = phm("score", "daily", home=h)
    assert still.returncode == 2 and "this change was rejected by Dr Sam Patel" in still.stderr
    (h / "phm.toml").write_text(
        '[policy.emergency_admission]\nbands = { "very high" = 0.005, high = 0.02, raised = 0.10 }\n'
    )
    restored = phm("audit", "status", "--model", MODEL, home=h)
    assert restored.returncode == 0 and ": in use" in restored.stdout


def test_changed_feature_definition_stops_the_daily_job_until_approved(trained, tmp_path) -> None:
    home = fresh(trained, tmp_path / "home")
    h = home.home
    approved_champion(home)
    reworded = reworded_feature(tmp_path / "reworded")
    words = phm("score", "daily", home=h, env={"PYTHONPATH": str(reworded)})
    assert words.returncode == 0, words.stderr  # a description is words, not computation
    changed = changed_feature_window(tmp_path / "changed")
    refused = phm("score", "daily", home=h, env={"PYTHONPATH": str(changed)})
    assert refused.returncode == 2 and "feature definitions (" in refused.stderr
    assert "changed ae_attendances_12m)" in refused.stderr and "approve-change" in refused.stderr
    review = phm(
        "audit",
        "approve-change",
        "--model",
        MODEL,
        "--by",
        "Dr Ada Jones",
        "--reason",
        "Window shortened to match the national definition; impact on ranking reviewed",
        home=h,
        env={"PYTHONPATH": str(changed)},
    )
    assert review.returncode == 0, review.stderr
    scored = phm("score", "daily", home=h, env={"PYTHONPATH": str(changed)})
    assert scored.returncode == 0, scored.stderr
    back = phm("score", "daily", home=h)  # the code as approved before is now the change
    assert back.returncode == 2 and "changed ae_attendances_12m" in back.stderr


def test_a_misspelled_configuration_key_fails_with_its_name(trained, tmp_path) -> None:
    h = registry_copy(trained, tmp_path / "home").home
    audit = tmp_path / "audit.json"
    audit.write_text(json.dumps({"top_shares": 0.1}))
    out = phm("audit", "run", "--model", MODEL, "--version", "1", "--config", str(audit), home=h)
    assert out.returncode == 2 and f"{audit}: top_shares: unknown key (did you mean top_share?)" in out.stderr
    train = tmp_path / "train.json"
    train.write_text(
        json.dumps({"model_name": MODEL, "train_dates": ["2023-04-01"], "validation_dates": ["2024-04-01"], "seeed": 3})
    )
    out = phm("train", "emergency-admission", "--config", str(train), home=h)
    assert out.returncode == 2 and "seeed: unknown key (did you mean seed?)" in out.stderr
    old = tmp_path / "old_audit.json"
    old.write_text(json.dumps({"schema_version": 0, "top_share": 0.05}))
    out = phm("config", "check", str(old), "--kind", "audit_config", home=h)
    assert out.returncode == 2 and "written for an older version of its schema (0)" in out.stderr
    (h / "phm.toml").write_text('engin = "spark"\n')
    out = phm("score", "daily", home=h)
    assert out.returncode == 2 and "engin: unknown key (did you mean engine?)" in out.stderr
    (h / "phm.toml").write_text("[policy.emergency_admision]\ntop_share = 0.05\n")
    out = phm("config", "show", home=h)
    assert (
        out.returncode == 2
        and "policy.emergency_admision: unknown model (did you mean policy.emergency_admission?)" in out.stderr
    )
    assert "Traceback" not in out.stderr


def test_a_report_on_other_data_is_not_approved_for_the_data_in_force(trained, tmp_path) -> None:
    """Trained and validated on the synthetic ICS, then the warehouse reloaded from an OMOP extract before the audit:
    the in-process audit judges the training run's validation scores, so its report names the synthetic ICS, and
    an approval (which would cover the OMOP data in force) is refused."""
    home = fresh(trained, tmp_path / "home")
    con = duckdb.connect(str(home.warehouse_path))
    con.execute("UPDATE load_info SET source_format = 'omop', synthetic = false")  # what an OMOP load records
    con.close()
    audit = tmp_path / "audit.json"
    audit.write_text(json.dumps({"bootstrap_draws": 50}))
    out = phm("audit", "run", "--model", MODEL, "--version", "1", "--config", str(audit), home=home.home)
    assert out.returncode == 0, out.stderr
    report = json.loads((home.reports_dir / "audits" / f"{MODEL}_v1" / "bias_report.json").read_text())
    assert report["subject"]["data"] == "synthetic ICS"  # the data its figures came from
    approve = phm(
        "audit", "approve", "--model", MODEL, "--version", "1", "--by", "Dr Ada Jones", "--reason", "fine",
        "--accept-flags", home=home.home,
    )  # fmt: skip
    assert approve.returncode == 2 and "Traceback" not in approve.stderr
    assert "data from synthetic ICS" in approve.stderr and "OMOP CDM v5.4 extract" in approve.stderr, approve.stderr


def test_a_report_at_a_fixed_threshold_is_not_approved_for_the_policy(trained, tmp_path) -> None:
    """An audit at a fixed risk threshold that flags almost nobody (every TPR 0: nothing can be compared, nothing
    flagged) judged no fairness at the operating policy's top share: its approval is refused."""
    home = fresh(trained, tmp_path / "home")
    audit = tmp_path / "audit.json"
    audit.write_text(json.dumps({"threshold": 0.999, "bootstrap_draws": 50}))
    out = phm("audit", "run", "--model", MODEL, "--version", "1", "--config", str(audit), home=home.home)
    assert out.returncode == 0, out.stderr
    approve = phm(
        "audit", "approve", "--model", MODEL, "--version", "1", "--by", "Dr Ada Jones", "--reason", "fine",
        "--accept-flags", home=home.home,
    )  # fmt: skip
    assert approve.returncode == 2 and "fixed threshold (risk >= 0.999)" in approve.stderr, approve.stderr
    assert "top 5%" in approve.stderr and "Traceback" not in approve.stderr
