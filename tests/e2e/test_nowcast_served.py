"""The bed nowcast as the real service serves it (`GET /api/nowcast`, the Capacity page): planners, data
scientists and safety officers only, counts only, and a kept file that is not exactly a nowcast refused."""

from __future__ import annotations

import json
import os
import re

import httpx


def call(url: str, path: str, token: str, **kw) -> httpx.Response:
    return httpx.get(url + path, headers={"Authorization": f"Bearer {token}"}, timeout=60, **kw)


def test_the_kept_nowcast_is_served_to_planners_only(served_url, served_tokens) -> None:
    server, tokens = served_url, served_tokens
    now = call(server, "/api/nowcast", tokens["planner"])  # the bed nowcast kept by `phm forecast nowcast`
    assert now.status_code == 200, now.text
    body = now.json()
    nights = body["nights"]
    assert body["site"] == "ICS" and len(nights) == 3 and body["calibration"]["nights"] == 40 and not body["stale"]
    assert all(n["q025"] <= n["q10"] <= n["nowcast"] <= n["q90"] <= n["q975"] for n in nights)
    assert {k for n in nights for k in n} == {"date", "in_beds_now", "nowcast", "q025", "q10", "q90", "q975"}
    for role in ("ds", "cso"):
        assert call(server, "/api/nowcast", tokens[role]).status_code == 200
    assert call(server, "/api/nowcast", tokens["planner"], params={"site": "NOPE"}).status_code == 404
    assert call(server, "/api/nowcast", tokens["coord"]).status_code == 403


def test_a_damaged_or_replaced_nowcast_is_refused_never_half_shown(served_url, served_tokens, served_home) -> None:
    """The kept nowcast is served only when it is exactly one: truncated, another shape, a person-level field or a
    folder in its place answer 503 (the page keeps its other sections); a file restored with its old modification
    time is still read afresh; one made more than a day ago is flagged stale."""
    server, tokens, home = served_url, served_tokens, served_home
    path = home.home / "nowcast" / "nowcast.json"
    good = path.read_bytes()
    record = json.loads(good)
    client = httpx.Client(base_url=server, timeout=60)  # the Capacity page, signed in as a browser is
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/signin").text).group(1)
    client.post("/ui/signin", data={"token": tokens["planner"], "csrf": csrf, "next": ""})
    try:
        injected = {**record, "rows": [{**record["rows"][0], "nhs_number": "9434765919"}, *record["rows"][1:]]}
        for bad in (good[:200], b"[]", json.dumps(injected).encode()):
            path.write_bytes(bad)
            r = call(server, "/api/nowcast", tokens["planner"])
            assert r.status_code == 503 and "cannot be read" in r.json()["detail"] and "9434765919" not in r.text
            page = client.get("/ui/capacity")
            assert page.status_code == 200 and "cannot be read" in page.text and 'class="chart' in page.text
        path.unlink()
        path.mkdir()
        assert call(server, "/api/nowcast", tokens["planner"]).status_code == 503
        path.rmdir()
        stamp = os.stat(home.home / "forecasts" / "latest" / "fit.json")  # any old time
        old = {**record, "made": "2020-01-01T00:00:00+00:00", "notes": ["EDITED"]}
        path.write_text(json.dumps(old))
        os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
        r = call(server, "/api/nowcast", tokens["planner"]).json()
        assert r["notes"] == ["EDITED"] and r["stale"] and r["age_hours"] > 24 * 365
        path.write_bytes(good)
        os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # restored with the same old time: read afresh
        assert call(server, "/api/nowcast", tokens["planner"]).json()["notes"] == record["notes"]
    finally:
        if path.is_dir():
            path.rmdir()
        path.write_bytes(good)
