"""The service uses only what a clinical safety officer approved, on a real `bentoml serve` over a copy of the
session's served home (20,000 people, an approved champion, daily snapshots), with real headless Chromium:

* changing the band cut-offs after approval stops the service from using the champion (live scoring refused,
  worklist paused, naming the difference) until a safety officer approves the change on the Equity page; the
  snapshot scored under the old configuration stays paused until the daily job scores under the approved one;
* a changed feature definition (a new release of the code) is refused the same way, naming the feature;
* a version moved to `champion` behind the gate's back is not used until its report is approved; a rejection
  through the API is final for that report; the service's decision is the same record as the CLI's.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import httpx
import pandas as pd
import pytest
from mlflow import MlflowClient

from evaluation.fairness.config import AuditConfig
from phm.core import ledger_file
from phm.core.settings import Settings
from serving.batch.store import current_folder
from serving.governance.model_audit import audit_model
from serving.users import Role, add_user
from support.browser import ARGS, PageSession, chromium_path
from support.cli import run as phm
from support.homes import registry_copy
from support.served import serve
from support.source import changed_feature_window
from training import tracking

MODEL = "emergency_admission"
pytestmark = pytest.mark.slow


def fresh(served_home: Settings, root: Path) -> tuple[Settings, dict[str, str]]:
    """A copy of the served home (registry, hazard log, snapshots) with a safety officer, a data scientist and a
    coordinator: (settings, name -> token)."""
    home = registry_copy(served_home, root, snapshots=True)
    practice = pd.read_parquet(current_folder(home) / "scores.parquet", columns=["practice_code"]).practice_code
    tokens = {}
    for key, name, role, scope in (
        ("cso", "Dr Ada Jones", Role.safety_officer, []),
        ("ds", "Dee Scientist", Role.data_scientist, []),
        ("coord", "Cy Coordinator", Role.coordinator, [str(practice.mode()[0])]),
    ):
        _, tokens[key] = add_user(home.home, name, role, scope)
    return home, tokens


@contextlib.contextmanager
def service(home: Settings, tmp_path_factory, monkeypatch: pytest.MonkeyPatch, code: Path | None = None):
    """A real `bentoml serve` of `home` (on the code in `code` when given: BentoML puts its working directory first
    on the path, so it starts there); stopped (and its log checked for stack traces) on leaving."""
    with monkeypatch.context() as m:
        if code is not None:
            m.setenv("PYTHONPATH", str(code))
            m.chdir(code)
        running = serve(home, tmp_path_factory)
        url = next(running)
    try:
        yield url
    finally:
        next(running, None)


def get(url: str, path: str, token: str | None = None, **kw) -> httpx.Response:
    return httpx.get(url + path, headers={"Authorization": f"Bearer {token}"} if token else {}, timeout=60, **kw)


def post(url: str, path: str, token: str, **kw) -> httpx.Response:
    return httpx.post(url + path, headers={"Authorization": f"Bearer {token}"}, timeout=60, **kw)


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=ARGS)
        yield browser
        browser.close()


def records(home: Settings) -> list[dict]:
    """Two people's predictors from the current snapshot (what a data scientist may score directly)."""
    frame = pd.read_parquet(current_folder(home) / "features.parquet").drop(columns=["person_id"]).head(2)
    return [{k: (None if pd.isna(v) else float(v)) for k, v in row.items()} for row in frame.to_dict("records")]


def test_changed_band_cut_offs_stop_the_service_until_the_change_is_approved_on_the_equity_page(
    served_home, tmp_path, tmp_path_factory, monkeypatch, chromium
) -> None:
    home, tokens = fresh(served_home, tmp_path / "home")
    body = {"records": records(home), "explain": False}
    with service(home, tmp_path_factory, monkeypatch) as url:
        health = get(url, "/api/health", tokens["ds"]).json()
        assert health["refused"] == [] and health["worklist"] == "ready"
        assert post(url, "/api/score", tokens["ds"], json=body).status_code == 200

    (home.home / "phm.toml").write_text(
        '[policy.emergency_admission]\nbands = { "very high" = 0.005, high = 0.02, raised = 0.10 }\n'
    )
    with service(home, tmp_path_factory, monkeypatch) as url:
        health = get(url, "/api/health", tokens["ds"]).json()
        assert health["refused"] == [MODEL] and health["models"] == {} and health["worklist"] == "paused"
        scored = post(url, "/api/score", tokens["ds"], json=body)
        assert scored.status_code == 409 and "band cut-offs: raised top 5% → 10%" in scored.json()["detail"]
        worklist = get(url, "/api/worklist", tokens["coord"])
        assert worklist.status_code == 409 and worklist.json()["detail"].startswith("The worklist of ")
        assert "band cut-offs: raised top 5% → 10%" in worklist.json()["detail"]
        models = get(url, "/api/models", tokens["ds"]).json()
        assert "a clinical safety officer must approve the change" in models["refused"][MODEL]

        s = PageSession(chromium, url, "safety_case_band_change")
        try:
            s.sign_in(tokens["cso"])
            s.goto(f"/ui/equity?model={MODEL}&version=1")
            page = s.page
            assert "band cut-offs: raised top 5% → 10%" in page.inner_text("#differences")
            assert page.locator("#worklist-paused").is_visible()
            assert s.accessibility_problems() == []
            s.shot("change_pending")
            page.check("#change-review input[name=decision][value=approved]")
            page.fill("#change-reason", "Capacity for twice as many contacts agreed with the PCNs")
            with page.expect_navigation():
                page.click("text=Record change review")
            assert "change approved" in page.inner_text("#decision-done")
            assert "In use under the configuration approved by Dr Ada Jones" in page.inner_text("#case-status")
            assert "configuration change approved by Dr Ada Jones" in page.inner_text("#history")
            s.shot("change_approved")
            assert not s.errors, s.errors
        finally:
            s.close()
        review = [
            e for e in ledger_file.read(home.home / "safety" / "hazard_log.jsonl") if e["kind"] == "change_review"
        ]
        assert len(review) == 1 and review[0]["via"] == "service" and review[0]["by"] == "Dr Ada Jones"

        health = get(url, "/api/health", tokens["ds"]).json()  # the hazard log changed: every worker reloaded
        assert health["refused"] == [] and health["models"] == {MODEL: "1"} and health["worklist"] == "paused"
        assert post(url, "/api/score", tokens["ds"], json=body).status_code == 200
        stale = get(url, "/api/worklist", tokens["coord"])
        assert stale.status_code == 409 and "run `phm score daily` to score under it" in stale.json()["detail"]

        daily = phm("score", "daily", home=home.home)
        assert daily.returncode == 0, daily.stderr
        assert post(url, "/api/admin/reload", tokens["ds"]).status_code == 200
        assert get(url, "/api/health", tokens["ds"]).json()["worklist"] == "ready"
        assert get(url, "/api/worklist", tokens["coord"]).status_code == 200
        meta = json.loads((current_folder(home) / "manifest.json").read_text())
        assert meta["bands"]["raised"] == 0.1 and meta["models"][MODEL]["approved_by"] == "Dr Ada Jones"
        assert sum(v for k, v in meta["band_counts"].items() if k != "routine") == -(-meta["people"] // 10)


def test_a_changed_feature_definition_is_refused_by_the_service(
    served_home, tmp_path, tmp_path_factory, monkeypatch
) -> None:
    home, tokens = fresh(served_home, tmp_path / "home")
    code = changed_feature_window(tmp_path / "release")
    with service(home, tmp_path_factory, monkeypatch, code=code) as url:
        health = get(url, "/api/health", tokens["ds"]).json()
        assert health["refused"] == [MODEL] and health["worklist"] == "paused"
        refused = post(url, "/api/score", tokens["ds"], json={"records": records(home), "explain": False})
        assert refused.status_code == 409 and "changed ae_attendances_12m" in refused.json()["detail"]
        case = get(url, f"/api/models/{MODEL}/versions/1/safety-case", tokens["cso"]).json()
        assert not case["ok"] and case["differences"][0].startswith("feature definitions (")


def test_the_service_deploys_only_a_currently_approved_version(
    served_home, tmp_path, tmp_path_factory, monkeypatch
) -> None:
    home, tokens = fresh(served_home, tmp_path / "home")
    tracking.configure(home)
    client = MlflowClient()
    v1 = client.get_model_version(MODEL, "1")
    client.create_model_version(MODEL, v1.source, v1.run_id)  # version 2 of the same run, audited, not approved
    client.set_model_version_tag(MODEL, "2", "feature_hash", v1.tags["feature_hash"])  # as training records it
    audit_model(home, MODEL, 2, AuditConfig(bootstrap_draws=50))
    with service(home, tmp_path_factory, monkeypatch) as url:
        client.set_registered_model_alias(MODEL, "champion", "2")  # behind the gate's back
        assert post(url, "/api/admin/reload", tokens["ds"]).status_code == 200
        health = get(url, "/api/health", tokens["ds"]).json()
        assert health["refused"] == [MODEL] and health["models"] == {}
        assert health["worklist"] == "ready"  # yesterday's worklist was ranked by version 1 under its approval
        refused = post(url, "/api/score", tokens["ds"], json={"records": records(home), "explain": False})
        assert refused.status_code == 409 and "must approve" in refused.json()["detail"]

        report = get(url, f"/api/models/{MODEL}/versions/2/bias-report", tokens["cso"]).json()["report_sha256"]
        path = f"/api/models/{MODEL}/versions/2/decision"
        missing = post(
            url, path, tokens["cso"], json={"decision": "approved", "reason": "read it", "accept_flags": True}
        )
        assert missing.status_code == 422  # the exact report decided on is required
        reject = post(
            url,
            path,
            tokens["cso"],
            json={"decision": "rejected", "reason": "validation period too short", "report_sha256": report[:12]},
        )
        assert reject.status_code == 200 and reject.json()["decision_via"] == "service"
        approve = post(
            url,
            path,
            tokens["cso"],
            json={
                "decision": "approved",
                "reason": "on reflection, fine",
                "report_sha256": report,
                "accept_flags": True,
            },
        )
        assert approve.status_code == 409 and "a rejection is final for that report" in approve.json()["detail"]

        audit_model(home, MODEL, 2, AuditConfig(bootstrap_draws=50))  # a new audit reopens the decision
        report = get(url, f"/api/models/{MODEL}/versions/2/bias-report", tokens["cso"]).json()["report_sha256"]
        approve = post(
            url,
            path,
            tokens["cso"],
            json={"decision": "approved", "reason": "new audit read", "report_sha256": report, "accept_flags": True},
        )
        assert approve.status_code == 200, approve.text
        health = get(url, "/api/health", tokens["ds"]).json()  # the approval is in the hazard log: version 2 is used
        assert health["refused"] == [] and health["models"] == {MODEL: "2"}
        assert (
            post(url, "/api/score", tokens["ds"], json={"records": records(home), "explain": False}).json()["version"]
            == "2"
        )

    decisions = [e for e in ledger_file.read(home.home / "safety" / "hazard_log.jsonl") if e["kind"] == "decision"]
    by_cli, by_service = decisions[0], decisions[-1]  # the served home's approval (library = CLI) and the API's
    assert by_cli["via"] == "cli" and by_service["via"] == "service" and set(by_cli) == set(by_service)
    assert json.dumps(sorted(by_service["configuration"])) == json.dumps(sorted(by_cli["configuration"]))


def test_an_approved_change_to_phm_toml_is_used_without_a_restart(served_home, tmp_path, tmp_path_factory, monkeypatch):
    # the CSO guide's flow (edit phm.toml, approve the change, run the daily job) on a service left running: it kept
    # the settings read at start, so the approval itself made it refuse the champion until someone restarted it
    home, tokens = fresh(served_home, tmp_path / "home")
    with service(home, tmp_path_factory, monkeypatch) as url:
        assert get(url, "/api/health", tokens["ds"]).json()["refused"] == []
        (home.home / "phm.toml").write_text(
            '[policy.emergency_admission]\nbands = { "very high" = 0.005, high = 0.02, raised = 0.10 }\n'
        )
        approved = phm(
            "audit", "approve-change", "--model", MODEL, "--by", "Dr Ada Jones", "--reason", "winter", home=home.home
        )
        assert approved.returncode == 0, approved.stderr
        health = get(url, "/api/health", tokens["ds"]).json()  # the hazard log changed: every worker reloaded
        assert health["refused"] == [] and health["models"] == {MODEL: "1"}, health
        assert phm("score", "daily", home=home.home).returncode == 0
        for _ in range(4):  # each worker (two) reloads on its next request: none serves the old scores
            worklist = get(url, "/api/worklist", tokens["coord"])
            assert worklist.status_code == 200, worklist.text
