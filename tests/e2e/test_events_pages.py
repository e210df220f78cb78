"""Near real time in the browser: a hospital feed POSTs an emergency admission and same-day discharge to the real
served service (`bentoml serve`), the incremental refresh publishes its delta (as `phm events refresh` does), and
the coordinator's Worklist page in headless Chromium shows the person flagged "discharged today after an
emergency admission" with the new risk, and says the scores are as at the day after the event."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import duckdb
import httpx
import pandas as pd
import pytest
from support.browser import ARGS, PageSession, chromium_path
from support.homes import registry_copy
from support.served import Server

from features.events.emit import hl7_adt
from features.sources.pseudonymise import Pseudonymiser
from phm.core.settings import DEMO_PSEUDONYM_KEY
from serving.batch.delta import refresh_delta
from serving.batch.store import current
from serving.users import Role, add_user
from training import tracking

pytestmark = pytest.mark.slow
FLAG = "Discharged today after an emergency admission"


def _row(page, person: int) -> list[str] | None:
    rows = page.eval_on_selector_all(
        "#worklist tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.innerText.trim()))"
    )
    return next((r for r in rows if r[1] == str(person)), None)


def test_a_posted_discharge_shows_on_the_worklist_page_with_its_new_risk(served_home, ics20k, tmp_path_factory) -> None:
    from playwright.sync_api import sync_playwright

    home = registry_copy(served_home, tmp_path_factory.mktemp("events_page_home"), snapshots=True)
    meta, scores = current(home)
    day = datetime.fromisoformat(meta["date"]).date()
    practice = scores.practice_code.value_counts().index[0]
    ranked = scores[scores.practice_code == practice].sort_values("risk")
    # high on the list, but not at its very top: there the model's score can be at its ceiling, so that one more
    # admission leaves it unchanged (the page must show a new risk)
    person = int(ranked.person_id.iloc[int(len(ranked) * 0.95)])
    numbers = {
        Pseudonymiser(DEMO_PSEUDONYM_KEY.encode()).person_id(n): n
        for n in pd.read_parquet(ics20k.out_dir / "patients.parquet", columns=["nhs_number"]).nhs_number
    }
    con = duckdb.connect(str(home.warehouse_path), read_only=True)
    site, dm = con.execute(
        "SELECT site_code, discharge_method FROM apc_spells WHERE discharge_method IS NOT NULL "
        "ORDER BY spell_id LIMIT 1"
    ).fetchone()
    con.close()
    _u, coord = add_user(home.home, "coord_events", Role.coordinator, [practice])
    _u, feed = add_user(home.home, "feed_events", Role.data_feed, [])
    at = lambda h: datetime.combine(day, time(h))  # noqa: E731
    body = "\r\n".join(
        [
            hl7_adt(
                "PAGE1",
                "admit",
                numbers[person],
                "PAGEV1",
                at(2),
                start=at(1),
                admission_method="21",
                site_code=site,
                diagnosis="J440",
            ),
            hl7_adt(
                "PAGE2",
                "discharge",
                numbers[person],
                "PAGEV1",
                at(10),
                start=at(1),
                end=at(9),
                admission_method="21",
                site_code=site,
                diagnosis="J440",
                discharge_method=dm,
            ),
        ]
    )
    server = Server(home, tmp_path_factory.mktemp("events_page_log"))
    url = server.start()
    filters = f"/ui/worklist?practice={practice}&band=routine&sort=risk&top=500"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium_path(), args=ARGS)
            s = PageSession(browser, url, "events_worklist")
            try:
                s.sign_in(coord)
                s.goto(filters)
                before = _row(s.page, person)
                assert before is not None and FLAG not in before[4]
                posted = httpx.post(
                    url + "/api/events", content=body, headers={"Authorization": f"Bearer {feed}"}, timeout=30
                )
                assert posted.status_code == 200 and posted.json()["accepted"] == 2, posted.text
                delta = refresh_delta(home, today=day)  # what `phm events refresh` (or `ingest --watch --refresh`) runs
                assert delta["index_date"] == str(day + timedelta(days=1))
                _meta, live = current(home)
                new_risk = float(live.set_index("person_id").risk.loc[person])
                assert new_risk != float(scores.set_index("person_id").risk.loc[person])
                s.goto(filters)
                after = _row(s.page, person)
                s.shot("after_event")
                assert after is not None and FLAG in after[4]
                assert after[6] == f"{100 * new_risk:.1f}%"
                note = s.page.inner_text(".events-note")
                assert f"everyone's risk is as at {delta['index_date']}" in note
                assert numbers[person] not in s.page.content()
                assert s.errors == []
            finally:
                s.close()
                browser.close()
    finally:
        server.stop()
        tracking.configure(served_home)
    assert "Traceback" not in server.log()
