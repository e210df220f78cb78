"""The Worklist page's re-identification in real headless Chromium against the session's `bentoml serve`: a care
coordinator uploads a synthetic practice list (from memory: the browser is handed the bytes, no file is written),
sees the named worklist — the same people as the API answers — downloads it as CSV, and a form without the
session's CSRF token is refused."""

from __future__ import annotations

import httpx
import pandas as pd
import pytest

from features.synthetic.practice_list import make
from phm.core import ledger_file
from support.browser import ARGS, PageSession, chromium_path
from support.practice_lists import as_csv


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def practice_list(ics20k, served_tokens):
    return make(ics20k.out_dir, [served_tokens["practice"]], 600, seed=5, malformed_share=0.03, other_share=0.10)


def rows_of(page) -> list[list[str]]:
    return page.eval_on_selector_all(
        "#named tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.innerText.trim()))"
    )


def test_upload_shows_and_downloads_the_named_worklist(
    chromium, served_url, served_tokens, served_home, practice_list, tmp_path
) -> None:
    body = as_csv(practice_list)
    api = httpx.post(
        served_url + "/api/worklist/reidentify",
        content=body,
        timeout=60,
        headers={"Authorization": f"Bearer {served_tokens['coord']}", "Content-Type": "text/csv"},
    ).json()
    assert api["matched"] > 0 and api["malformed"] == 18
    s = PageSession(chromium, served_url, "reidentify_coordinator")
    try:
        s.sign_in(served_tokens["coord"])
        page = s.page
        assert page.url.endswith("/ui/worklist") and s.accessibility_problems() == []
        upload = {"name": "practice_list.csv", "mimeType": "text/csv", "buffer": body}
        page.set_input_files("#practice_list", upload)
        with page.expect_navigation() as nav:
            page.click("text=Show named worklist")
        response = nav.value
        assert response.status == 200 and response.headers["cache-control"] == "no-store"
        assert page.inner_text("h1") == "Named worklist for direct care"
        assert s.accessibility_problems() == []
        shown = rows_of(page)
        assert [r[1].replace(" ", "") for r in shown] == [p["nhs_number"] for p in api["people"]]
        assert [r[2] for r in shown] == [p["name"] for p in api["people"]]
        assert [r[4] for r in shown] == [p["details"]["Phone"] for p in api["people"]]  # the list's own column
        assert page.inner_text("#matched") == f"{api['matched']:,}"
        assert page.inner_text("#malformed-rows") == ", ".join(map(str, api["malformed_rows"]))
        s.shot("named_worklist")

        # the same list as CSV, from the Worklist page's second button
        s.goto("/ui/worklist")
        page.set_input_files("#practice_list", upload)
        before = len(ledger_file.read(served_home.home / "security" / "access_log.jsonl"))
        with page.expect_download() as info:
            page.click("text=Download named worklist (CSV)")
        path = tmp_path / "named.csv"
        info.value.save_as(path)
        # a form POST answered with a file ends the navigation as "aborted", which Chromium reports as failed
        s.errors[:] = [e for e in s.errors if e != f"request failed: {served_url}/ui/worklist/reidentify"]
        table = pd.read_csv(path, dtype=str)
        assert list(table.person_id) == [p["person_id"] for p in api["people"]]
        assert list(table.nhs_number) == [p["nhs_number"] for p in api["people"]]
        path.unlink()
        logged = [
            e
            for e in ledger_file.read(served_home.home / "security" / "access_log.jsonl")[before:]
            if e["route"] == "/ui/worklist/reidentify"
        ]
        assert [(e["user"], e["purpose"], e["count"]) for e in logged] == [("coord", "direct care", api["matched"])]

        # a form without the session's CSRF token is refused, and reveals nothing
        refused = s.context.request.post(
            served_url + "/ui/worklist/reidentify", multipart={"file": upload, "format": "page"}
        )
        assert refused.status == 403 and api["people"][0]["name"] not in refused.text()
    finally:
        s.close()
    assert not s.errors, s.errors


def test_a_bad_list_gets_a_plain_message(chromium, served_url, served_tokens) -> None:
    s = PageSession(chromium, served_url, "reidentify_bad_list")
    try:
        s.sign_in(served_tokens["coord"])
        page = s.page
        page.set_input_files(
            "#practice_list",
            {"name": "list.csv", "mimeType": "text/csv", "buffer": b"Patient,Name,DOB\n9434765919,A,x\n"},
        )
        with page.expect_navigation() as nav:
            page.click("text=Show named worklist")
        assert nav.value.status == 422
        assert "missing: ['nhs_number']" in page.inner_text("main")
        s.errors[:] = [e for e in s.errors if "status of 422" not in e]
    finally:
        s.close()
    assert not s.errors, s.errors
