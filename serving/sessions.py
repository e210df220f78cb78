"""Signed-in web sessions, held server-side in the operational database so that they can be ended at once.

Signing in with a token sets a cookie holding a random session token (only its SHA-256 is stored). A session
ends at sign-out, after `service.idle_minutes` without a request, `service.session_hours` after sign-in, and at
once when the user is removed or disabled or their access token replaced (the command line ends their sessions;
each lookup also checks the user list, so a session never outlives its user even if that step failed).
Sign-in itself carries a CSRF token bound to a short-lived cookie (login CSRF)."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from phm.core.settings import Settings
from phm.operational.database import DatabaseError, engine, shown_url
from phm.operational.tables import sessions as table
from serving.users import User

COOKIE = "phm_session"
SIGNIN_COOKIE = "phm_signin"
SIGNIN_LIFETIME = 3600  # seconds a sign-in form stays valid
TOUCH_EVERY = timedelta(seconds=30)  # last-seen is written at most this often (idle timeout resolution)
KEEP_ENDED = timedelta(days=7)


@dataclass(frozen=True)
class Session:
    user: User
    csrf: str
    id_sha256: str


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _fingerprint(user: User) -> str:
    """The user's token and last change (token replaced, disabled, enabled): a session started before either is
    over, even when the command line could not end it and the user was enabled again before their next request."""
    if user.changed is None:
        return user.token_sha256[:16]
    return hashlib.sha256(f"{user.token_sha256}|{user.changed}".encode()).hexdigest()[:16]


class Sessions:
    """The session store of one PHM home (one per worker process)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.lifetime = timedelta(hours=settings.service.session_hours)
        self.idle = timedelta(minutes=settings.service.idle_minutes)

    @property
    def _engine(self):
        return engine(self.settings)

    def _failed(self, exc: Exception) -> DatabaseError:
        return DatabaseError(f"the session store at {shown_url(self.settings)} cannot be used ({type(exc).__name__})")

    def issue(self, user: User) -> str:
        """Start a session for `user`; returns the cookie value (shown to the browser only)."""
        token = secrets.token_urlsafe(32)
        now = _now()
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    insert(table).values(
                        id_sha256=_digest(token),
                        user_name=user.name,
                        token_fingerprint=_fingerprint(user),
                        csrf=secrets.token_hex(16),
                        created_at=now,
                        last_seen_at=now,
                        expires_at=now + self.lifetime,
                    )
                )
                conn.execute(
                    delete(table).where(
                        or_(table.c.expires_at < now - KEEP_ENDED, table.c.revoked_at < now - KEEP_ENDED)
                    )
                )
        except SQLAlchemyError as exc:
            raise self._failed(exc) from exc
        return token

    def lookup(self, cookie: str | None, users: dict[str, User]) -> Session | None:
        """The live session of this cookie, or None (unknown, ended, idle too long, user gone or changed)."""
        if not cookie or len(cookie) > 200:
            return None
        key = _digest(cookie)
        now = _now()
        try:
            with self._engine.begin() as conn:
                row = conn.execute(select(table).where(table.c.id_sha256 == key)).mappings().first()
                if row is None or row["revoked_at"] is not None:
                    return None
                user = users.get(row["user_name"])
                reason = (
                    "expired"
                    if row["expires_at"] <= now
                    else "idle"
                    if row["last_seen_at"] + self.idle <= now
                    else "user changed"
                    if user is None or user.disabled or _fingerprint(user) != row["token_fingerprint"]
                    else None
                )
                if reason is not None:
                    conn.execute(
                        update(table).where(table.c.id_sha256 == key).values(revoked_at=now, revoked_reason=reason)
                    )
                    return None
                if now - row["last_seen_at"] >= TOUCH_EVERY:
                    conn.execute(update(table).where(table.c.id_sha256 == key).values(last_seen_at=now))
                return Session(user=user, csrf=row["csrf"], id_sha256=key)
        except SQLAlchemyError as exc:
            raise self._failed(exc) from exc

    def end(self, cookie: str | None, reason: str = "signed out") -> bool:
        if not cookie or len(cookie) > 200:
            return False
        return self._revoke(table.c.id_sha256 == _digest(cookie), reason) > 0

    def end_user(self, name: str, reason: str) -> int:
        """End every live session of user `name`; how many were ended."""
        return self._revoke(table.c.user_name == name, reason)

    def _revoke(self, where, reason: str) -> int:
        try:
            with self._engine.begin() as conn:
                return conn.execute(
                    update(table)
                    .where(where, table.c.revoked_at.is_(None))
                    .values(revoked_at=_now(), revoked_reason=reason)
                ).rowcount
        except SQLAlchemyError as exc:
            raise self._failed(exc) from exc

    def live(self, name: str | None = None) -> int:
        """How many sessions are live (optionally of one user)."""
        now = _now()
        query = select(table.c.id_sha256).where(
            table.c.revoked_at.is_(None), table.c.expires_at > now, table.c.last_seen_at > now - self.idle
        )
        if name is not None:
            query = query.where(table.c.user_name == name)
        try:
            with self._engine.connect() as conn:
                return len(conn.execute(query).all())
        except SQLAlchemyError as exc:
            raise self._failed(exc) from exc


def csrf_ok(session: Session | None, token: str | None) -> bool:
    """Whether a form's token matches its session's (forms that change something carry it)."""
    return bool(session and token) and hmac.compare_digest(session.csrf, str(token))


# ---- sign-in (login CSRF): a nonce cookie and its keyed digest in the form --------------------------------
class SessionKeyError(RuntimeError):
    """The sign-in key cannot be made or read, or is damaged (signing in is refused until it is fixed)."""


@lru_cache(maxsize=8)
def _key(home: Path) -> bytes:
    """A per-home secret for sign-in form tokens: made once (owner-only) and put in place whole, so that a crash
    or a full disk never leaves an empty or partial key for another worker to read; a damaged key is refused."""
    path = home / "security" / "session.key"
    try:
        if not path.exists():
            _make_key(path)
        text = path.read_text().strip()
    except OSError as exc:
        raise SessionKeyError(f"{path}: the sign-in key cannot be made or read ({exc.strerror or exc})") from exc
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise SessionKeyError(f"{path}: the sign-in key is damaged; delete the file and restart the service")
    return bytes.fromhex(text)


def _make_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
            fh.flush()
            os.fsync(fh.fileno())
        os.link(tmp, path)  # atomic, and never replaces a key another worker made first
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def signin_nonce() -> str:
    return f"{int(time.time())}.{secrets.token_urlsafe(16)}"


def signin_token(home: Path, nonce: str) -> str:
    return hmac.new(_key(home), ("signin:" + nonce).encode(), hashlib.sha256).hexdigest()[:32]


def signin_ok(home: Path, nonce: str | None, token: str | None) -> bool:
    """The sign-in form's token matches the nonce cookie set with the form, which is less than an hour old."""
    if not nonce or not token or len(nonce) > 100:
        return False
    try:
        issued = int(nonce.split(".", 1)[0])
    except ValueError:
        return False
    fresh = 0 <= time.time() - issued <= SIGNIN_LIFETIME
    return fresh and hmac.compare_digest(signin_token(home, nonce), str(token))
