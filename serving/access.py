"""The access log: one hash-chained entry (`phm.core.ledger`) for every request to a protected route, refused
ones included — who (user or "anonymous"), role, route, outcome (HTTP status), from where, and the pseudonymised
ids of the people whose rows were returned (or asked for and refused). Never an NHS number.

The entry is written when the response starts, before any of its body leaves the service. If it cannot be
written (disk full, the log altered or unreadable), a response that would carry data is replaced by a 503:
nothing is answered unlogged. Refusals still go out (they carry nothing) and the failure is logged."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse

from phm.core import ledger, ledger_head
from serving.users import User

_NHS_LIKE = re.compile(r"(?<!\d)\d{3}[ -]?\d{3}[ -]?\d{4}(?!\d)")
UNLOGGED = "the access log cannot be written, so nothing is answered until it can (the service log says why)"


def log_path(home: Path) -> Path:
    return home / "security" / "access_log.jsonl"


def record(
    request: Request,
    user: User | None = None,
    people: list | None = None,
    asked: list | None = None,
    practices: list[str] | None = None,
    extra: dict | None = None,
) -> None:
    """Note on the request what its access-log entry says: the user, the people returned, the people asked for
    but refused, the practices read, and any other facts of the request (`extra`: small JSON values, never an
    identifier: e.g. the purpose of a re-identification and how many people it returned). An id asked for that
    looks like an NHS number (someone typed one where a pseudonymised id belongs) is kept as "[redacted]"."""
    state = request.state
    if user is not None:
        state.phm_user = user
    if people is not None:
        state.phm_people = [str(int(p)) for p in people]
    if asked is not None:
        state.phm_asked = [_NHS_LIKE.sub("[redacted]", str(p)) for p in asked][:1000]
    if practices is not None:
        state.phm_practices = sorted({str(p) for p in practices})
    if extra is not None:
        state.phm_extra = dict(extra)


def route_of(scope: dict) -> str:
    """The full path asked for (a mounted app may see it with or without its mount prefix)."""
    root, path = scope.get("root_path", "") or "", scope.get("path", "")
    return path if path.startswith(root) else root + path


def _route(scope: dict) -> str:
    return _NHS_LIKE.sub("[redacted]", route_of(scope)[:200])


class AccessLog:
    """ASGI middleware writing the access-log entry of every protected request (see the module docstring)."""

    def __init__(
        self,
        app,
        home: Callable[[], Path | None],
        protected: Callable[[str, str], bool],
        log: logging.Logger,
        html: bool = False,
    ) -> None:
        self.app, self.home, self.protected, self.log, self.html = app, home, protected, log, html

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.protected(scope["method"], route_of(scope)):
            return await self.app(scope, receive, send)
        state = scope.setdefault("state", {})
        refused = False

        async def logged(message):
            nonlocal refused
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if not self._write(scope, state, status) and status < 400:
                    refused = True
                    return await self._unavailable(scope, receive, send)
            elif refused:
                return None
            await send(message)

        await self.app(scope, receive, logged)

    def _write(self, scope: dict, state: dict, status: int) -> bool:
        user: User | None = state.get("phm_user")
        client = scope.get("client") or ("", 0)
        fields = {
            "user": user.name if user else "anonymous",
            "role": user.role.value if user else None,
            "method": scope["method"],
            "route": _route(scope),
            "status": status,
            "client": client[0],
            "people": state.get("phm_people", []) if status < 400 else [],
            "practices": state.get("phm_practices", []) if status < 400 else [],
        }
        if status < 400:
            fields.update({k: v for k, v in state.get("phm_extra", {}).items() if k not in fields})
        if state.get("phm_asked"):
            fields["asked"] = state["phm_asked"]
        home = self.home()
        if home is None:
            self.log.error("access log: the service is not ready; %s %s not logged", scope["method"], fields["route"])
            return False
        try:
            ledger.append(log_path(home), "access", full_check=False, **fields)
            return True
        except (ledger_head.LedgerError, OSError, ValueError) as exc:
            self.log.error(
                "access log %s cannot be appended (%s: %s); %s %s answered %s",
                log_path(home),
                type(exc).__name__,
                str(exc)[:200],
                scope["method"],
                fields["route"],
                status if status >= 400 else "503 instead of " + str(status),
            )
            return False

    async def _unavailable(self, scope, receive, send):
        if self.html:
            response = HTMLResponse(
                '<!DOCTYPE html><html lang="en-GB"><head><meta charset="utf-8"><title>Not available'
                "</title></head><body><h1>Not available just now</h1><p>The access log cannot be "
                "written, so no page is shown until it can. Tell your administrator.</p></body></html>",
                status_code=503,
                headers={"Cache-Control": "no-store"},
            )
        else:
            response = JSONResponse({"detail": UNLOGGED}, status_code=503)
        await response(scope, receive, send)
