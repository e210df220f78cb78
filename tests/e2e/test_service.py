"""The service end to end: a real `bentoml serve` subprocess on 127.0.0.1 over a 20,000-person synthetic
ICS (the session's served home, tests/served.py); every endpoint with every
role, refusals, small-number suppression, the access log, a schema-driven fuzz test, and a daily
scoring job killed mid-write."""

from __future__ import annotations

import json
import os
import subprocess
import time

import httpx
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from phm.core import ledger_check, ledger_file
from phm.core.settings import Settings
from support.served import BIN
from models.explain import reasons
from serving.batch.store import POINTER, current, snapshots_root
from training.registry import load_champion
from training import tracking
from support.cli import run as phm


@pytest.fixture(scope="module")
def home(served_home) -> Settings:
    return served_home


@pytest.fixture(scope="module")
def tokens(served_tokens) -> dict[str, str]:
    return served_tokens


@pytest.fixture(scope="module")
def server(served_url) -> str:
    return served_url


def call(
    url: str, method: str, path: str, token: str | None = None, headers: dict | None = None, **kw
) -> httpx.Response:
    headers = {**(headers or {}), **({"Authorization": f"Bearer {token}"} if token else {})}
    return httpx.request(method, url + path, headers=headers, timeout=60, **kw)


def access_entries(home: Settings) -> list[dict]:
    return ledger_file.read(home.home / "security" / "access_log.jsonl")


def test_health_and_authentication(server, tokens) -> None:
    assert call(server, "GET", "/api/health").json() == {"status": "ok"}  # a stranger learns only that it is up
    health = call(server, "GET", "/api/health", tokens["planner"]).json()
    assert health["status"] == "ok" and health["models"]["emergency_admission"] == "1" and health["snapshot"]
    assert "users" not in health
    assert call(server, "GET", "/api/me").status_code == 401
    assert call(server, "GET", "/api/me", "phm_not_a_token").status_code == 401
    me = call(server, "GET", "/api/me", tokens["coord"]).json()
    assert me == {"name": "coord", "role": "coordinator", "practices": [tokens["practice"]]}
    schema = call(server, "GET", "/api/openapi.json").json()
    assert {"/worklist", "/score", "/forecast", "/scenario", "/cohort/summary"} <= set(schema["paths"])


def test_worklist_scoped_to_the_coordinators_practices(server, tokens, home) -> None:
    before = len(access_entries(home))
    r = call(server, "GET", "/api/worklist", tokens["coord"], params={"top": 25})
    assert r.status_code == 200, r.text
    assert (r.headers["cache-control"], r.headers["x-content-type-options"]) == ("no-store", "nosniff")  # not kept
    body = r.json()
    assert body["practices"] == [tokens["practice"]] and 0 < len(body["rows"]) <= 25
    rows = body["rows"]
    assert all(x["practice_code"] == tokens["practice"] for x in rows)
    assert [x["risk"] for x in rows] == sorted((x["risk"] for x in rows), reverse=True)
    assert all(x["band"] != "routine" and x["reasons"] and x["reasons"][0]["words"] for x in rows)
    other = call(server, "GET", "/api/worklist", tokens["coord"], params={"practice": tokens["other_practice"]})
    assert other.status_code == 403 and "outside your scope" in other.json()["detail"]
    assert other.headers["cache-control"] == "no-store"
    unknown = call(server, "GET", "/api/worklist", tokens["coord"], params={"practice": "Z99999"})
    assert unknown.status_code == 404 and "unknown practice" in unknown.json()["detail"]
    for role in ("planner", "cso", "ds"):
        assert call(server, "GET", "/api/worklist", tokens[role]).status_code == 403
    csv = call(server, "GET", "/api/worklist", tokens["coord"], params={"format": "csv", "top": 10, "min_band": "high"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    table = pd.read_csv(pd.io.common.StringIO(csv.text))
    assert len(table) <= 10 and set(table.band) <= {"high", "very high"} and "reasons" in table
    logged = [e for e in access_entries(home)[before:] if e["route"] == "/api/worklist"]
    assert [(e["user"], e["status"]) for e in logged] == [
        ("coord", 200),
        ("coord", 403),
        ("coord", 404),
        ("planner", 403),
        ("cso", 403),
        ("ds", 403),
        ("coord", 200),
    ]  # refusals too
    assert logged[0]["people"] == [x["person_id"] for x in rows] and logged[0]["practices"] == [tokens["practice"]]
    assert logged[-1]["people"] == [str(x) for x in table.person_id] and logged[0]["role"] == "coordinator"
    assert all(e["people"] == [] for e in logged[1:-1])
    assert ledger_check.verify(home.home / "security" / "access_log.jsonl") == []


def test_score_by_id_and_by_record(server, tokens, home) -> None:
    rows = call(server, "GET", "/api/worklist", tokens["coord"], params={"top": 3, "min_band": "routine"}).json()[
        "rows"
    ]
    ids = [x["person_id"] for x in rows]
    before = len(access_entries(home))
    r = call(server, "POST", "/api/score", tokens["coord"], json={"person_ids": ids})
    assert r.status_code == 200, r.text
    scored = r.json()["results"]
    assert [s["person_id"] for s in scored] == ids and all(s["reasons"] for s in scored)
    assert [s["risk"] for s in scored] == [x["risk"] for x in rows]
    entry = access_entries(home)[before]
    assert entry["route"] == "/api/score" and entry["people"] == ids and entry["status"] == 200
    other = call(server, "POST", "/api/score", tokens["other"], json={"person_ids": ids})
    assert other.status_code == 404 and "not found in your practices" in other.json()["detail"]
    probe = access_entries(home)[-1]  # a probe for another practice's people is logged with the ids asked for
    assert (probe["user"], probe["status"], probe["people"], probe["asked"]) == ("other", 404, [], ids)
    assert call(server, "POST", "/api/score", tokens["ds"], json={"person_ids": ids}).status_code == 403
    assert call(server, "POST", "/api/score", tokens["planner"], json={"person_ids": ids}).status_code == 403
    record = {"age": 88, "ltc_count": 4, "emergency_admissions_12m": 3, "frailty_deficits": 6}
    young = {"age": 25}
    by_record = call(server, "POST", "/api/score", tokens["ds"], json={"records": [record, young]})
    assert by_record.status_code == 200, by_record.text
    risks = [x["risk"] for x in by_record.json()["results"]]
    assert risks[0] > risks[1] and by_record.json()["results"][0]["person_id"] is None
    bad = call(server, "POST", "/api/score", tokens["ds"], json={"records": [{"shoe_size": 9}]})
    assert bad.status_code == 422 and "shoe_size" in bad.json()["detail"]
    assert call(server, "POST", "/api/score", tokens["coord"], json={}).status_code == 422
    too_many = call(server, "POST", "/api/score", tokens["coord"], json={"person_ids": ["1"] * 1001})
    assert too_many.status_code == 422
    huge = call(
        server,
        "POST",
        "/api/score",
        tokens["coord"],
        content=b"[" + b"1," * 600_000 + b"1]",
        headers={"content-type": "application/json"},
    )
    assert huge.status_code == 413


def test_reasons_on_demand_for_people_outside_the_bands(server, tokens, home) -> None:
    """People below the worklist bands carry no reasons in the snapshot: the service explains them from the
    snapshot's predictors (loaded with it, one LightGBM thread per worker), exactly as in-process."""
    everyone = call(
        server, "GET", "/api/worklist", tokens["coord"], params={"top": 10_000, "min_band": "routine"}
    ).json()["rows"]
    routine = [x["person_id"] for x in everyone if x["band"] == "routine"][-5:]
    assert len(routine) == 5
    r = call(server, "POST", "/api/score", tokens["coord"], json={"person_ids": routine})
    assert r.status_code == 200, r.text
    served = {s["person_id"]: s["reasons"] for s in r.json()["results"]}
    snapshot, _ = current(home)
    tracking.configure(home)
    folder = snapshots_root(home) / snapshot["snapshot_folder"]
    champion = load_champion("emergency_admission")  # on this process's default LightGBM threads
    features = pd.read_parquet(folder / "features.parquet").set_index("person_id").loc[[int(p) for p in routine]]
    expected = reasons(champion.model, features)
    assert [served[p] for p in routine] == expected and any(expected)


def test_planner_aggregates_under_disclosure_control(server, tokens) -> None:
    r = call(server, "GET", "/api/cohort/summary", tokens["planner"], params={"by": "band"})
    assert r.status_code == 200
    body = r.json()
    assert body["unit"] == "ICS" and body["policy"] == {"hidden_counts": "1-7", "rounded_to": 5, "group_step": 10}
    rows = body["rows"]
    assert [x["group"] for x in rows] == ["routine", "raised", "high", "very high"]
    for x in rows:
        assert (x["people"] is None and x["people_display"] == "*" and x["mean_risk"] is None) or (
            x["people"] % 5 == 0 and (x["people"] == 0 or x["people"] >= 10)
        )
    tiny = call(
        server,
        "GET",
        "/api/cohort/summary",
        tokens["planner"],
        params={"by": "age_band", "practice": tokens["practice"]},
    ).json()
    assert tiny["unit"] == f"practice {tokens['practice']}"
    assert all(x["people"] is None or x["people"] % 5 == 0 for x in tiny["rows"])
    coord = call(server, "GET", "/api/cohort/summary", tokens["coord"], params={"by": "practice"}).json()["rows"]
    assert [x["group"] for x in coord] == [tokens["practice"]]
    pcn = call(server, "GET", "/api/cohort/summary", tokens["planner"], params={"by": "pcn"}).json()["rows"]
    mine = call(server, "GET", "/api/cohort/summary", tokens["coord"], params={"by": "pcn"}).json()["rows"][0]["group"]
    assert len(pcn) > 1 and mine in {x["group"] for x in pcn}
    in_pcn = call(server, "GET", "/api/cohort/summary", tokens["coord"], params={"pcn": mine}).json()
    assert in_pcn["unit"] == f"PCN {mine} (your practices in it)"  # not the whole PCN's count under its name
    assert (
        call(
            server, "GET", "/api/cohort/summary", tokens["coord"], params={"practice": tokens["other_practice"]}
        ).status_code
        == 403
    )
    two = call(
        server,
        "GET",
        "/api/cohort/summary",
        tokens["planner"],
        params={"practice": [tokens["practice"], tokens["other_practice"]]},
    )
    assert two.status_code == 422 and "one practice" in two.json()["detail"]  # no overlapping practice lists
    assert call(server, "GET", "/api/cohort/summary", tokens["planner"], params={"by": "person_id"}).status_code == 422


def test_forecast_and_scenario(server, tokens) -> None:
    r = call(
        server,
        "GET",
        "/api/forecast",
        tokens["planner"],
        params={"site": "ICS", "metric": "ga_beds_occupied", "horizon": 14},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["forecast"]) == 14 and body["history"] and all(f["q10"] <= f["q90"] for f in body["forecast"])
    assert call(server, "GET", "/api/forecast", tokens["planner"], params={"site": "NOPE"}).status_code == 404
    assert call(server, "GET", "/api/forecast", tokens["planner"], params={"horizon": 0}).status_code == 422
    assert call(server, "GET", "/api/forecast", tokens["planner"], params={"horizon": 200}).status_code == 422
    assert call(server, "GET", "/api/forecast", tokens["coord"]).status_code == 403
    sc = call(
        server,
        "POST",
        "/api/scenario",
        tokens["planner"],
        json={"site": "ICS", "metric": "ga_beds_occupied", "horizon": 14, "prevented_share": 0.3},
    )
    assert sc.status_code == 200, sc.text
    assert sc.json()["summary"]["bed_days_saved_over_horizon"]["mean"] > 0
    bad = call(server, "POST", "/api/scenario", tokens["planner"], json={"site": "ICS", "metric": "beds", "horizon": 7})
    assert bad.status_code == 422


def test_models_reports_and_decisions(server, tokens) -> None:
    models = call(server, "GET", "/api/models", tokens["ds"]).json()
    assert models["deployed"]["emergency_admission"] == "1"
    v1 = next(v for v in models["versions"] if v["name"] == "emergency_admission" and v["version"] == 1)
    assert "champion" in v1["aliases"] and v1["status"] == "approved"
    report = call(server, "GET", "/api/models/emergency_admission/versions/1/bias-report", tokens["cso"])
    assert report.status_code == 200 and report.json()["subject"]["version"] == 1
    page = call(
        server,
        "GET",
        "/api/models/emergency_admission/versions/1/bias-report",
        tokens["cso"],
        params={"format": "html"},
    )
    assert page.status_code == 200 and page.text.startswith("<!DOCTYPE html>")
    assert (
        call(server, "GET", "/api/models/emergency_admission/versions/1/bias-report", tokens["planner"]).status_code
        == 403
    )
    assert (
        call(server, "GET", "/api/models/emergency_admission/versions/9/bias-report", tokens["cso"]).status_code == 404
    )
    assert call(server, "GET", "/api/models/nope/versions/1/bias-report", tokens["cso"]).status_code == 404
    sha = report.json()["report_sha256"]
    decision = call(
        server,
        "POST",
        "/api/models/emergency_admission/versions/1/decision",
        tokens["cso"],
        json={
            "decision": "approved",
            "reason": "re-confirmed after review",
            "accept_flags": True,
            "report_sha256": sha,
        },
    )
    assert decision.status_code == 200 and decision.json()["decision_by"] == "cso"
    assert decision.json()["decision_report_sha256"] == sha and decision.json()["decision_via"] == "service"
    assert (
        call(
            server,
            "POST",
            "/api/models/emergency_admission/versions/1/decision",
            tokens["ds"],
            json={"decision": "approved", "reason": "mine", "report_sha256": sha},
        ).status_code
        == 403
    )
    missing = call(
        server,
        "POST",
        "/api/models/emergency_admission/versions/7/decision",
        tokens["cso"],
        json={"decision": "rejected", "reason": "no such version", "report_sha256": sha},
    )
    assert missing.status_code == 409


def test_fuzzed_requests_never_get_a_5xx(server, tokens) -> None:
    schema = call(server, "GET", "/api/openapi.json").json()
    operations = [(path, method) for path, ops in schema["paths"].items() for method in ops]
    junk = st.recursive(
        st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=30),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
        max_leaves=12,
    )
    params = st.dictionaries(
        st.sampled_from(
            [
                "practice",
                "top",
                "sort",
                "format",
                "min_band",
                "by",
                "site",
                "metric",
                "horizon",
                "pcn",
                "age_band",
                "segment",
                "condition",
                "x",
            ]
        ),
        st.text(max_size=20) | st.integers(-5, 20_000).map(str),
        max_size=5,
    )
    names = ["coord", "planner", "cso", "ds"]

    @hsettings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(
        op=st.sampled_from(operations),
        who=st.sampled_from(names),
        query=params,
        body=junk,
        segment=st.sampled_from(["emergency_admission", "flare_up", "x", "%00", "1" * 30]),
        version=st.integers(-3, 10**12),
    )
    def fuzz(op, who, query, body, segment, version):
        path, method = op
        concrete = path.replace("{name}", segment).replace("{version}", str(version))
        body_kw = (
            {"content": json.dumps(body).encode(), "headers": {"Content-Type": "application/json"}}
            if method in ("post", "put")
            else {}
        )  # json.dumps, not httpx: NaN and Infinity tokens reach the service
        r = call(server, method.upper(), "/api" + concrete, tokens[who], params=query, **body_kw)
        assert r.status_code < 500, (method, concrete, query, body, r.status_code, r.text[:300])
        assert "Traceback" not in r.text

    fuzz()


def test_reload_and_a_killed_scoring_job_leaves_the_previous_snapshot(server, tokens, home) -> None:
    root = snapshots_root(home)
    pointer_before = (root / POINTER).read_text()
    worklist_before = call(server, "GET", "/api/worklist", tokens["coord"], params={"top": 5}).json()
    env = {"PHM_FAULT_PAUSE_MID_WRITE": "60"}
    proc = subprocess.Popen(
        [str(BIN / "phm"), "score", "daily"],
        env={**os.environ, "PHM_HOME": str(home.home), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not any(
        p.name.endswith(".partial") and (p / "scores.parquet").exists() for p in root.iterdir()
    ):
        time.sleep(0.2)
    proc.kill()  # mid-write: scores written, features not yet, pointer untouched
    proc.wait()
    assert (root / POINTER).read_text() == pointer_before
    reloaded = call(server, "POST", "/api/admin/reload", tokens["ds"])
    assert reloaded.status_code == 200
    assert call(server, "GET", "/api/worklist", tokens["coord"], params={"top": 5}).json() == worklist_before
    # a job that completes moves the pointer; the service picks it up on reload, without a restart
    assert any(p.name.endswith(".partial") for p in root.iterdir())  # what the killed run left
    done = phm("score", "daily", home=home.home)
    assert done.returncode == 0, done.stderr
    assert (root / POINTER).read_text() != pointer_before
    assert not any(p.name.endswith(".partial") for p in root.iterdir())  # removed by the next run
    assert call(server, "POST", "/api/admin/reload", tokens["coord"]).status_code == 403
    after = call(server, "POST", "/api/admin/reload", tokens["ds"]).json()
    assert after["snapshot"] == json.loads((root / POINTER).read_text())["date"]
    rows = call(server, "GET", "/api/worklist", tokens["coord"], params={"top": 5}).json()["rows"]
    assert rows and all(r["previous_risk"] is not None for r in rows)  # the trend against the last snapshot
