"""The web pages in real headless Chromium (Debian's package, driven by Playwright) against the real
`bentoml serve` subprocess of the session: each role signs in, loads its pages, filters, downloads the
CSV, runs a scenario and records a decision. Console errors fail a test; screenshots are saved under
test-artifacts/pages (PHM_DOCS_SCREENSHOTS=docs/screenshots refreshes the README's pictures)."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from support.browser import ARGS, PageSession, chromium_path
from phm.core import ledger_file
from serving.batch.store import snapshots_root


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def session(chromium, served_url, request):
    made: list[PageSession] = []

    def open_as(name: str) -> PageSession:
        s = PageSession(chromium, served_url, f"{request.node.name.removeprefix('test_')}_{name}")
        made.append(s)
        return s

    yield open_as
    for s in made:
        s.close()
    for s in made:
        assert not s.errors, f"browser errors for {s.name}: {s.errors}"


@pytest.fixture(scope="module")
def person_ids(served_home) -> set[str]:
    current = max(p for p in snapshots_root(served_home).iterdir() if p.is_dir())
    return set(pd.read_parquet(current / "scores.parquet", columns=["person_id"]).person_id.astype(str))


def table_rows(page, selector: str) -> list[list[str]]:
    return page.eval_on_selector_all(
        f"{selector} tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.innerText.trim()))"
    )


def test_coordinator_worklist_filter_download_and_scope(session, served_tokens, served_home, tmp_path) -> None:
    s = session("coordinator")
    s.sign_in(served_tokens["coord"])
    page = s.page
    assert page.url.endswith("/ui/worklist") and page.title().startswith("Worklist")
    assert s.accessibility_problems() == []
    practice, other = served_tokens["practice"], served_tokens["other_practice"]
    nav = page.eval_on_selector_all("nav.pages a", "links => links.map(a => a.innerText)")
    assert nav == ["Worklist", "Models"]
    rows = table_rows(page, "#worklist")
    assert rows and all(r[2] == practice for r in rows)  # only the coordinator's practice
    assert "Change is compared with the scores of" in page.inner_text("main")
    assert {r[8].split()[0] for r in rows} & {"up", "down", "about", "▲", "▼"}  # trend against a week before
    assert all(r[-1] for r in rows)  # reasons in plain words
    options = page.eval_on_selector_all("#practice option", "os => os.map(o => o.value)")
    assert options == ["", practice]
    s.shot("worklist")

    # filter: high band and above, biggest rise first
    page.select_option("#band", "high")
    page.select_option("#sort", "change")
    with page.expect_navigation():
        page.click("form.filters button[type=submit]")
    assert "band=high" in page.url and "sort=change" in page.url
    high = table_rows(page, "#worklist")
    assert high and all(r[7] in ("high", "very high") for r in high) and len(high) < len(rows) + 1
    matching = int(re.sub(r"\D", "", page.inner_text("#matching")))
    s.shot("worklist_filtered")

    # the CSV holds the same filtered rows
    before = len(ledger_file.read(served_home.home / "security" / "access_log.jsonl"))
    with page.expect_download() as info:
        page.click("text=Download these rows (CSV)")
    path = tmp_path / "worklist.csv"
    info.value.save_as(path)
    table = pd.read_csv(path, dtype={"person_id": str})
    assert len(table) == min(matching, 100) and set(table.practice_code) == {practice}
    assert set(table.band) <= {"high", "very high"} and table.reasons.notna().all()
    entries = ledger_file.read(served_home.home / "security" / "access_log.jsonl")[before:]
    assert any(
        e["route"] == "/ui/worklist.csv" and e["user"] == "coord" and e["people"] == list(table.person_id)
        for e in entries
    )

    # scope: another practice and the planners' pages are refused with a plain message
    s.goto(f"/ui/worklist?practice={other}", refused=403)
    assert "outside your scope" in page.inner_text("main")
    s.goto("/ui/capacity", refused=403)
    assert "not available to a care coordinator" in page.inner_text("main")

    # an address that fails validation is refused, and the log names who was refused (not "anonymous")
    before = len(ledger_file.read(served_home.home / "security" / "access_log.jsonl"))
    s.goto("/ui/worklist?top=0", refused=422)
    assert "Check your choices" in page.title()
    entries = ledger_file.read(served_home.home / "security" / "access_log.jsonl")[before:]
    assert [(e["user"], e["status"]) for e in entries if e["route"] == "/ui/worklist"] == [("coord", 422)]


def test_planner_capacity_scenario_and_no_person_rows(session, served_tokens, person_ids) -> None:
    s = session("planner")
    s.sign_in(served_tokens["planner"])
    page = s.page
    assert page.url.endswith("/ui/capacity")
    assert s.accessibility_problems() == []
    assert page.locator("svg.chart").count() == 3
    text = page.inner_text("main")
    assert "Chance of going over the alert level" in text and "beds in total" in text
    nights = table_rows(page, "#nowcast")  # the bed nowcast of the next 3 nights, with its ranges
    assert len(nights) == 3 and "from the patients in beds on the night of" in text, nights
    for night in nights:
        low, high = (float(v.replace(",", "")) for v in night[3].split("–"))
        assert low <= float(night[2].replace(",", "")) <= high
    s.shot("capacity")

    page.fill("#top_percent", "10")
    page.fill("#prevented_percent", "30")
    with page.expect_navigation():
        page.click("text=Show forecast and scenario")
    assert "top_percent=10" in page.url
    assert page.locator("#scenario-result").is_visible()
    text = page.inner_text("main")
    assert "reaching the top 10.0% of people" in text and "bed days saved" in text
    assert page.locator('svg.chart polyline[stroke="#007f3b"]').count() == 3  # the scenario redrawn on every chart
    s.shot("capacity_scenario")

    # aggregates only: small counts suppressed, and no person's id anywhere on the planner's pages
    for _, people, _ in table_rows(page, "#by-pcn") + table_rows(page, "#by-band"):
        assert people == "*" or int(people.replace(",", "")) % 5 == 0  # hidden, or rounded to 5
    assert "Counts of 1 to 7 people are hidden" in page.inner_text("#disclosure-policy")
    for path in ("/ui/capacity", "/ui/models"):
        s.goto(path)
        html = page.content()
        assert not (set(re.findall(r"\b\d{6,19}\b", html)) & person_ids)
        assert "Person (pseudonymised ID)" not in html
    for path in ("/ui/worklist", "/ui/equity"):
        s.goto(path, refused=403)
        assert "not available to a planner" in page.inner_text("main")


def test_safety_officer_reads_the_bias_report_and_approves(session, served_tokens, served_home) -> None:
    s = session("safety_officer")
    s.sign_in(served_tokens["cso"])
    page = s.page
    assert page.url.endswith("/ui/equity")
    page.click("text=Review emergency admission version 1")
    page.wait_for_load_state()
    assert s.accessibility_problems() == []
    main = page.inner_text("main")
    assert "Emergency admission version 1: bias report" in main
    tables = page.eval_on_selector_all("section table", "ts => ts.map(t => t.id)")
    flagged = "flags" in tables
    assert not flagged or tables[0] == "flags"  # flagged groups first
    assert ("finding(s) flagged" in main) == flagged
    s.shot("equity")

    page.check("input[name=decision][value=approved]")
    page.fill("#reason", "Reviewed in the browser: gaps are uncertain, monitoring agreed.")
    if flagged:
        page.check("input[name=accept_flags]")
    with page.expect_navigation():
        page.click("text=Record decision")
    assert page.locator("#decision-done").is_visible() and "approved" in page.inner_text("#decision-done")
    log = ledger_file.read(served_home.home / "safety" / "hazard_log.jsonl")
    last = [e for e in log if e["kind"] == "decision"][-1]
    assert (
        last["by"] == "cso" and last["reason"].startswith("Reviewed in the browser") and last["decision"] == "approved"
    )
    assert "Reviewed in the browser" in page.inner_text("#history")
    # the CSO pack beside the report: deployment record signed by the officer, TRIPOD+AI checklist, public report
    pack = page.inner_text("#cso-pack")
    assert "Deployment record (DCB0160)" in pack and "Residual risk" in pack and "Rank adults" in pack
    assert "approved by cso" in page.inner_text("#pack-signoff")
    assert page.locator("#pack-tripod tbody tr").count() >= 20 and page.locator(".pack-public").count() >= 5
    s.shot("equity_approved")

    with page.expect_navigation():
        page.click("text=Read the full bias report")
    assert "bias report" in page.title().lower() and page.locator("svg").count() > 0


def test_data_scientist_models_page(session, served_tokens) -> None:
    s = session("data_scientist")
    s.sign_in(served_tokens["ds"])
    page = s.page
    assert page.url.endswith("/ui/models")
    assert s.accessibility_problems() == []
    rows = table_rows(page, "#model-versions")
    v1 = next(r for r in rows if r[0] == "emergency admission" and r[1] == "1")
    assert "champion" in v1[2] and 0.6 < float(v1[4]) < 1.0  # AUROC
    width = page.eval_on_selector("img.plot", "img => img.complete ? img.naturalWidth : 0")
    assert width > 100  # the calibration plot from the training run
    s.shot("models")
    s.goto("/ui/equity")
    assert page.locator("#decide").count() == 0  # only safety officers decide
    s.goto("/ui/models/emergency_admission/1/card")
    assert "Model card: emergency_admission version 1" in page.title() and "Intended use" in page.inner_text("body")


def test_sign_in_rules(session, served_tokens) -> None:
    s = session("visitor")
    page = s.page
    s.goto("/ui/worklist?band=high")
    assert "/ui/signin" in page.url and "next=" in page.url  # sent to sign in, then back
    page.fill("#token", "phm_not_a_real_token")
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert "not recognised" in page.inner_text("main")
    s.errors[:] = [e for e in s.errors if "status of 401" not in e]  # the refused sign-in answers 401
    page.fill("#token", served_tokens["coord"])
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.url.endswith("/ui/worklist?band=high")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"  # keyboard users can skip to the content
    cookie = next(c for c in s.context.cookies() if c["name"] == "phm_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and served_tokens["coord"] not in cookie["value"]
    with page.expect_navigation():
        page.click("text=Sign out")
    assert page.url.endswith("/ui/signin")
    s.goto("/ui/worklist")
    assert "/ui/signin" in page.url
