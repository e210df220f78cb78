"""Signing in on the real served service when its own files fail: the sign-in key (which signs the sign-in
form's CSRF token) is made whole or not at all, so a full disk or a crash never leaves an empty key that every
worker would then use (a key anyone can compute); a damaged key refuses sign-in with 503, never a 500 and never a
form signed with it. The home holds only users (no data or models are needed to sign in)."""

from __future__ import annotations

import hashlib
import hmac
import re

import httpx
import pytest

from phm.core import ledger_file
from phm.core.settings import Settings
from serving import access
from serving.users import Role, add_user
from support.cli import run
from support.disk_full import filling_disk
from support.served import Server

pytestmark = pytest.mark.slow


def _form(client: httpx.Client) -> tuple[httpx.Response, str | None]:
    r = client.get("/ui/signin")
    found = re.search(r'name="csrf" value="([^"]+)"', r.text)
    return r, found.group(1) if found else None


def test_the_sign_in_key_is_made_whole_and_a_damaged_one_refused(tmp_path) -> None:
    home = Settings(home=tmp_path / "home")
    security = home.home / "security"
    with filling_disk(security, "2m", limit=0) as disk:
        if not disk.tmpfs:
            pytest.skip("needs a real full file system (a tmpfs, as root) under the service")
        _, token = add_user(home.home, "ann", Role.planner)
        key = security / "session.key"
        key.write_text("")  # as an old version left it when the disk filled while making it
        server = Server(home, tmp_path, env={"PHM_SERVICE_WORKERS": "1"})
        url = server.start()
        try:
            with httpx.Client(base_url=url, timeout=60) as c:
                page, csrf = _form(c)
                assert page.status_code == 503 and csrf is None, page.status_code
                assert "Signing in is unavailable" in page.text
                nonce = "9999999999.forged"  # a form token under the empty key, as anyone could make it
                forged = hmac.new(b"", f"signin:{nonce}".encode(), hashlib.sha256).hexdigest()[:32]
                c.cookies.set("phm_signin", nonce, path="/ui")
                signed = c.post("/ui/signin", data={"token": token, "csrf": forged}, follow_redirects=False)
                assert signed.status_code == 503 and "phm_session" not in signed.headers.get("set-cookie", "")

            key.unlink()
            with disk.full(), httpx.Client(base_url=url, timeout=60) as c:
                page, csrf = _form(c)
                assert page.status_code == 503 and csrf is None, page.status_code
                assert not key.exists() and not list(security.glob(".session.key.*"))  # nothing half made

            with httpx.Client(base_url=url, timeout=60) as c:  # space freed: a whole key, and signing in works
                page, csrf = _form(c)
                assert page.status_code == 200 and csrf is not None
                assert re.fullmatch(r"[0-9a-f]{64}", key.read_text()) and oct(key.stat().st_mode)[-3:] == "600"
                signed = c.post("/ui/signin", data={"token": token, "csrf": csrf}, follow_redirects=False)
                assert signed.status_code == 303 and c.cookies.get("phm_session")
        finally:
            server.stop()
        assert "Traceback" not in server.log()


def test_a_refused_feed_is_named_and_an_ended_session_signs_out_plainly(tmp_path) -> None:
    home = Settings(home=tmp_path / "home")
    _, token = add_user(home.home, "ann", Role.planner)
    _, feed = add_user(home.home, "ward feed", Role.data_feed)
    server = Server(home, tmp_path, env={"PHM_SERVICE_WORKERS": "1"})
    url = server.start()
    try:
        with httpx.Client(base_url=url, timeout=60) as c:
            _, csrf = _form(c)
            refused = c.post("/ui/signin", data={"token": feed, "csrf": csrf}, follow_redirects=False)
            assert refused.status_code == 403 and "data feed" in refused.text
            entry = ledger_file.read(access.log_path(home.home))[-1]
            assert (entry["route"], entry["status"], entry["user"], entry["role"]) == (
                "/ui/signin",
                403,
                "ward feed",
                "data_feed",
            )

            _, csrf = _form(c)
            assert c.post("/ui/signin", data={"token": token, "csrf": csrf}, follow_redirects=False).status_code == 303
            page = c.get("/ui/models")
            form = re.search(r'action="/ui/signout".*?name="csrf" value="([^"]+)"', page.text, re.S)
            assert page.status_code == 200 and form, page.status_code
            assert run("users", "rotate", "ann", home=home.home).returncode == 0  # ends ann's session
            out = c.post("/ui/signout", data={"csrf": form.group(1)}, follow_redirects=False)
            assert out.status_code == 303 and out.headers["location"] == "/ui/signin", out.status_code
            assert not c.cookies.get("phm_session")
            stranger = httpx.post(url + "/ui/signout", follow_redirects=False)  # no session: nothing to end
            assert stranger.status_code == 303 and stranger.headers["location"] == "/ui/signin"
    finally:
        server.stop()
    assert "Traceback" not in server.log()
