"""Signed session cookies for the web pages. Signing in with a token sets a cookie naming the user and
a fingerprint of their token, signed with a per-home key, valid for eight hours; the token itself is
never stored in the browser. Replacing a user's token (`phm users add --replace`) ends their sessions."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from functools import lru_cache
from pathlib import Path

from serving.users import User

COOKIE = "phm_session"
LIFETIME = 8 * 3600  # seconds


@lru_cache(maxsize=8)
def _key(home: Path) -> bytes:
    """The signing key (created once, readable only by the service's user; it never changes, so it is
    read once per process)."""
    path = home / "security" / "session.key"
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker created it first
        time.sleep(0.05)
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


def _sign(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def issue(home: Path, user: User, now: float | None = None) -> str:
    """A cookie value for `user`."""
    payload = {"u": user.name, "t": user.token_sha256[:16], "exp": int((now or time.time()) + LIFETIME),
               "n": secrets.token_hex(8)}
    body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()
    return f"{body}.{_sign(_key(home), body)}"


def user_for(home: Path, users: list[User], cookie: str | None, now: float | None = None) -> User | None:
    """The signed-in user, or None (no cookie, bad signature, expired, or the token was replaced)."""
    if not cookie or cookie.count(".") != 1 or len(cookie) > 1000:
        return None
    body, signature = cookie.split(".")
    if not hmac.compare_digest(signature, _sign(_key(home), body)):
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(body.encode()))
    except ValueError:
        return None
    if payload.get("exp", 0) < (now or time.time()):
        return None
    return next((u for u in users if u.name == payload.get("u") and u.token_sha256[:16] == payload.get("t")), None)


def csrf_token(home: Path, cookie: str) -> str:
    """The form token bound to this session (forms that change something must carry it)."""
    return _sign(_key(home), "csrf:" + cookie)[:32]


def csrf_ok(home: Path, cookie: str | None, token: str | None) -> bool:
    return bool(cookie and token) and hmac.compare_digest(csrf_token(home, cookie), token)
