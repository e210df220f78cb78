"""Information governance under attack, on the session's real `bentoml serve` (tests/support/served.py) and the
real `phm` command: the service's outer surface, users removed, disabled and rotated, an unreadable user list,
server-side sessions (sign-out, idle timeout, login CSRF, Secure behind a proxy), the access log (refusals, the
people returned, "who viewed me?", a log that cannot be written) and planning scenarios that would single
someone out. Each test reproduces an attack of issue 18 and shows that it now fails."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
from pathlib import Path

import httpx
import pandas as pd
import pytest

from phm.core import ledger_file
from phm.core.settings import DEMO_PSEUDONYM_KEY
from features.sources.pseudonymise import Pseudonymiser
from support.cli import run as phm

pytestmark = pytest.mark.slow


def call(url: str, method: str, path: str, token: str | None = None, **kw) -> httpx.Response:
    headers = {**kw.pop("headers", {}), **({"Authorization": f"Bearer {token}"} if token else {})}
    return httpx.request(method, url + path, headers=headers, timeout=60, **kw)


def sign_in(url: str, token: str, headers: dict | None = None) -> tuple[httpx.Client, httpx.Response]:
    """Sign in through the form as a browser does (the form's login-CSRF token and its cookie)."""
    client = httpx.Client(base_url=url, timeout=60)
    form = client.get("/ui/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    answer = client.post("/ui/signin", data={"token": token, "csrf": csrf, "next": ""}, headers=headers or {})
    return client, answer


def access_log(home) -> list[dict]:
    return ledger_file.read(home.home / "security" / "access_log.jsonl")


def test_the_service_says_nothing_to_strangers(served_url, served_tokens) -> None:
    root = httpx.get(served_url + "/", timeout=30)
    assert root.status_code == 303 and root.headers["location"] == "/ui/"  # not BentoML's Swagger UI
    for path in ("/docs.json", "/schema.json", "/static_content/swagger-ui.css", "/api/docs", "/api/redoc", "/metrics"):
        assert httpx.get(served_url + path, timeout=30).status_code == 404, path
    assert httpx.get(served_url + "/api/health", timeout=30).json() == {"status": "ok"}
    assert httpx.post(served_url + "/healthz", json={}, timeout=30).json() == {"status": "ok"}
    assert httpx.get(served_url + "/healthz", timeout=30).status_code == 200
    page = httpx.get(served_url + "/ui/signin", timeout=30)
    assert "<script" not in page.text.lower() and not re.search(r'(src|href)="https?://', page.text)
    assert "script-src 'none'" in page.headers["content-security-policy"]


def test_score_records_with_nan_or_infinity_are_refused(served_url, served_tokens) -> None:
    for raw in (
        b'{"records": [{"age": NaN}]}',
        b'{"records": [{"age": Infinity}]}',
        b'{"records": [{"age": -Infinity}]}',
        b'{"records": [{"age": "NaN"}]}',
    ):
        r = call(
            served_url,
            "POST",
            "/api/score",
            served_tokens["ds"],
            content=raw,
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 422, (raw, r.status_code, r.text[:200])
    ok = call(served_url, "POST", "/api/score", served_tokens["ds"], json={"records": [{"age": 80, "ltc_count": None}]})
    assert ok.status_code == 200 and 0 < ok.json()["results"][0]["risk"] < 1


def test_scenarios_refuse_small_groups_and_move_in_steps(served_url, served_tokens) -> None:
    base = {"site": "ICS", "metric": "emergency_admissions", "horizon": 7, "simulations": 100}
    tiny = call(served_url, "POST", "/api/scenario", served_tokens["planner"], json={**base, "top_share": 0.0001})
    assert tiny.status_code == 422 and "fewer than 8 people" in tiny.json()["detail"]  # the one-person attack
    reached = []
    for share in [0.0006 + 0.00005 * i for i in range(12)]:
        r = call(served_url, "POST", "/api/scenario", served_tokens["planner"], json={**base, "top_share": share})
        assert r.status_code == 200, r.text
        reached.append((r.json()["people_reached"], r.json()["expected_admissions_in_group_per_day"]))
    sizes = sorted({k for k, _ in reached})
    assert all(k % 10 == 0 and k >= 10 for k in sizes) and len(sizes) >= 2
    # overlapping scenarios differ by whole steps of 10 people, never by one person
    assert all(b - a >= 10 for a, b in zip(sizes, sizes[1:]))


def test_users_are_removed_disabled_and_rotated_at_once(served_url, served_home, served_tokens) -> None:
    home = served_home.home
    made = phm(
        "users", "add", "Temp Coordinator", "--role", "coordinator", "--practice", served_tokens["practice"], home=home
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.split()[-1]
    assert call(served_url, "GET", "/api/worklist", token, params={"top": 1}).status_code == 200
    client, answer = sign_in(served_url, token)
    assert answer.status_code == 303 and client.get("/ui/worklist").status_code == 200

    rotated = phm("users", "rotate", "Temp Coordinator", home=home)
    assert rotated.returncode == 0 and "Ended 1 signed-in session(s)" in rotated.stdout
    new_token = rotated.stdout.split()[-1]
    assert call(served_url, "GET", "/api/worklist", token).status_code == 401  # the old token, at once
    assert client.get("/ui/worklist").status_code == 303  # and the old session
    assert call(served_url, "GET", "/api/worklist", new_token, params={"top": 1}).status_code == 200

    client, _ = sign_in(served_url, new_token)
    assert phm("users", "disable", "Temp Coordinator", home=home).returncode == 0
    assert call(served_url, "GET", "/api/worklist", new_token).status_code == 401
    assert client.get("/ui/worklist").status_code == 303
    assert "disabled" in phm("users", "list", home=home).stdout
    assert phm("users", "enable", "Temp Coordinator", home=home).returncode == 0
    assert call(served_url, "GET", "/api/worklist", new_token, params={"top": 1}).status_code == 200

    client, _ = sign_in(served_url, new_token)
    removed = phm("users", "remove", "Temp Coordinator", home=home)
    assert removed.returncode == 0, removed.stderr
    assert call(served_url, "GET", "/api/worklist", new_token).status_code == 401
    assert client.get("/ui/worklist").status_code == 303
    missing = phm("users", "remove", "Temp Coordinator", home=home)
    assert missing.returncode == 2 and "no user named" in missing.stderr
    listed = json.loads((home / "security" / "users.json").read_text())
    assert "Temp Coordinator" not in {u["name"] for u in listed}
    assert oct((home / "security" / "users.json").stat().st_mode & 0o777) == "0o600"


def test_an_unreadable_user_list_fails_closed_and_recovers(served_url, served_home, served_tokens) -> None:
    path = served_home.home / "security" / "users.json"
    good = path.read_text()
    broken = good.replace('"role"', '"role" ', 1).rstrip()[:-1]  # a hand edit with a syntax slip (no closing bracket)
    log = served_home.home / "logs" / "phm.log"
    try:
        path.write_text(broken)
        for _ in range(6):  # both workers refuse; none keeps serving its old list
            r = call(served_url, "GET", "/api/worklist", served_tokens["coord"])
            assert r.status_code == 503 and "user list" in r.json()["detail"]
        assert call(served_url, "GET", "/api/forecast", served_tokens["planner"]).status_code == 503
        assert call(served_url, "GET", "/ui/worklist").status_code in (303, 503)
        assert "user list unusable, refusing every authenticated request" in log.read_text()
    finally:
        tmp = path.with_suffix(".restore")
        tmp.write_text(good)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    for _ in range(6):
        assert call(served_url, "GET", "/api/worklist", served_tokens["coord"], params={"top": 1}).status_code == 200
    assert "user list readable again" in log.read_text()


def test_sessions_end_at_sign_out_and_when_idle(served_url, served_home, served_tokens) -> None:
    client, answer = sign_in(served_url, served_tokens["planner"])
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/capacity"
    cookie = client.cookies.get("phm_session", path="/ui")
    assert cookie and "Secure" not in answer.headers["set-cookie"]  # plain http, no proxy
    page = client.get("/ui/models")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    assert client.post("/ui/signout", data={"csrf": "forged"}).status_code == 403  # sign-out needs the form's token
    assert client.post("/ui/signout", data={"csrf": csrf}).status_code == 303
    replay = httpx.get(served_url + "/ui/models", cookies={"phm_session": cookie}, timeout=30)
    assert replay.status_code == 303 and "/ui/signin" in replay.headers["location"]  # a captured cookie is dead

    client, _ = sign_in(served_url, served_tokens["planner"])
    cookie = client.cookies.get("phm_session", path="/ui")
    db = sqlite3.connect(served_home.home / "operational" / "phm.db")
    with db:  # as if 31 minutes passed without a request
        db.execute(
            "UPDATE sessions SET last_seen_at = datetime(last_seen_at, '-31 minutes') WHERE revoked_at IS NULL "
            "AND user_name = 'planner'"
        )
    assert client.get("/ui/models").status_code == 303
    reason = db.execute(
        "SELECT revoked_reason FROM sessions WHERE user_name = 'planner' ORDER BY created_at DESC"
    ).fetchone()
    assert reason == ("idle",)
    db.close()


def test_sign_in_needs_the_forms_token_and_is_secure_behind_a_trusted_proxy(served_url, served_tokens) -> None:
    forged = httpx.post(served_url + "/ui/signin", data={"token": served_tokens["planner"], "next": ""}, timeout=30)
    assert forged.status_code == 403 and "phm_session" not in forged.headers.get("set-cookie", "")  # login CSRF
    client = httpx.Client(base_url=served_url, timeout=30)
    client.get("/ui/signin")
    other = httpx.Client(base_url=served_url, timeout=30)
    stolen = re.search(r'name="csrf" value="([^"]+)"', other.get("/ui/signin").text).group(1)
    assert client.post("/ui/signin", data={"token": served_tokens["planner"], "csrf": stolen}).status_code == 403
    # a TLS-terminating proxy on this host (trusted by default) says the browser used https
    _, answer = sign_in(served_url, served_tokens["planner"], headers={"X-Forwarded-Proto": "https"})
    assert answer.status_code == 303
    session_cookie = [c for c in answer.headers.get_list("set-cookie") if c.startswith("phm_session=")][0]
    assert "Secure" in session_cookie and "HttpOnly" in session_cookie and "SameSite=strict" in session_cookie


def test_access_log_records_refusals_and_answers_who_viewed(served_url, served_home, served_tokens, ics20k) -> None:
    home = served_home.home
    before = len(access_log(served_home))
    assert call(served_url, "GET", "/api/worklist").status_code == 401
    assert call(served_url, "GET", "/api/worklist", "phm_wrong").status_code == 401
    assert call(served_url, "GET", "/api/forecast", served_tokens["coord"]).status_code == 403
    rows = call(served_url, "GET", "/api/worklist", served_tokens["coord"], params={"top": 3}).json()["rows"]
    logged = access_log(served_home)[before:]
    assert [(e["user"], e["route"], e["status"]) for e in logged] == [
        ("anonymous", "/api/worklist", 401),
        ("anonymous", "/api/worklist", 401),
        ("coord", "/api/forecast", 403),
        ("coord", "/api/worklist", 200),
    ]
    assert logged[-1]["people"] == [r["person_id"] for r in rows] and logged[0]["client"] == "127.0.0.1"

    # who viewed the first of them? the IG lead types the NHS number; it is never printed or stored
    patients = pd.read_parquet(Path(ics20k.out_dir) / "patients.parquet", columns=["nhs_number"])
    pseudo = Pseudonymiser(DEMO_PSEUDONYM_KEY.encode())
    number = next(n for n in patients.nhs_number if str(pseudo.person_id(n)) == rows[0]["person_id"])
    out = phm("access", "who-viewed", "--nhs-number", f"{number[:3]} {number[3:6]} {number[6:]}", home=home)
    assert out.returncode == 0, out.stderr
    assert "coord" in out.stdout and "/api/worklist" in out.stdout and "viewed" in out.stdout
    assert number not in out.stdout + out.stderr
    for path in home.rglob("*"):
        if path.is_file() and path.suffix in (".jsonl", ".log", ".json", ".db"):
            assert number.encode() not in path.read_bytes(), path
    lookup = access_log(served_home)[-1]
    assert lookup["kind"] == "lookup" and lookup["people"] == [rows[0]["person_id"]]
    bad = phm("access", "who-viewed", "--nhs-number", "0000000000", home=home)
    assert bad.returncode == 2 and "not a valid NHS number" in bad.stderr and "0000000000" not in bad.stderr
    verified = phm("access", "verify", home=home)
    assert verified.returncode == 0 and "intact" in verified.stdout


def test_an_nhs_number_asked_for_in_place_of_a_person_id_is_not_logged(served_url, served_home, served_tokens) -> None:
    number = "9434765919"  # a valid NHS number typed where the API wants a pseudonymised person id
    before = len(access_log(served_home))
    fhir = call(served_url, "GET", "/api/fhir/RiskAssessment", served_tokens["coord"], params={"patient": number})
    assert fhir.status_code == 200 and fhir.json()["total"] == 0
    scored = call(served_url, "POST", "/api/score", served_tokens["coord"], json={"person_ids": [number, "12345"]})
    assert scored.status_code == 404
    logged = access_log(served_home)[before:]
    assert [(e["route"], e["asked"]) for e in logged] == [
        ("/api/fhir/RiskAssessment", ["[redacted]"]),
        ("/api/score", ["[redacted]", "12345"]),
    ]
    assert number.encode() not in (served_home.home / "security" / "access_log.jsonl").read_bytes()


def test_person_level_routes_fail_closed_when_the_access_log_cannot_be_written(
    served_url, served_home, served_tokens
) -> None:
    path = served_home.home / "security" / "access_log.jsonl"
    aside = path.with_suffix(".aside")
    os.replace(path, aside)
    path.mkdir()  # appends now fail (as on a full or read-only disk)
    try:
        for _ in range(4):
            r = call(served_url, "GET", "/api/worklist", served_tokens["coord"], params={"top": 5})
            assert r.status_code == 503 and "access log" in r.json()["detail"] and "rows" not in r.text
        ids = ["1"]
        assert (
            call(served_url, "POST", "/api/score", served_tokens["coord"], json={"person_ids": ids}).status_code == 404
        )
        page = sign_in(served_url, served_tokens["coord"])[1]
        assert page.status_code == 503 and "access log" in page.text
    finally:
        path.rmdir()
        os.replace(aside, path)
    assert call(served_url, "GET", "/api/worklist", served_tokens["coord"], params={"top": 5}).status_code == 200


@pytest.fixture()
def log_copy(served_home, served_url, served_tokens, tmp_path):
    """A home holding a copy of the served access log, to tamper with (after requests that log)."""
    for _ in range(6):
        call(served_url, "GET", "/api/worklist", served_tokens["coord"], params={"top": 1})
    home = tmp_path / "tamper"
    (home / "security").mkdir(parents=True)
    for name in os.listdir(served_home.home / "security"):
        source = served_home.home / "security" / name
        if source.is_file() and not name.startswith("users"):
            shutil.copy(source, home / "security" / name)
        elif name == "anchors":  # the logs' signed heads (and the key beside them, copied above)
            shutil.copytree(source, home / "security" / name)
    return home


def _verify(home: Path) -> tuple[int, str]:
    out = phm("access", "verify", home=home)
    return out.returncode, out.stdout + out.stderr


def test_access_verify_detects_edits_and_deletions(log_copy) -> None:
    path = log_copy / "security" / "access_log.jsonl"
    assert _verify(log_copy)[0] == 0
    good = path.read_text().splitlines(keepends=True)
    assert len(good) >= 5
    entry = json.loads(good[1])
    entry["user"] = "someone else"  # an edited line, its hash left as it was
    path.write_text("".join([good[0], json.dumps(entry, sort_keys=True) + "\n", *good[2:]]))
    assert _verify(log_copy)[0] == 1
    path.write_text("".join(good[:2] + good[3:]))  # a middle line deleted
    code, text = _verify(log_copy)
    assert code == 1 and "problem" in text


def test_access_verify_detects_a_cut_tail_an_emptied_and_a_deleted_log(log_copy) -> None:
    path = log_copy / "security" / "access_log.jsonl"
    good = path.read_text().splitlines(keepends=True)
    path.write_text("".join(good[:-2]))
    assert _verify(log_copy)[0] == 1  # the signed head remembers the entries cut from the end
    path.write_text("")
    assert _verify(log_copy)[0] == 1
    path.unlink()
    assert _verify(log_copy)[0] == 1
