"""Plain ASGI wrappers: a request-body limit (413) and a guard that turns any unexpected error into a short 500
answer with no stack trace, logging only the error's type (both on the API and the pages), and the service's
outer surface (`Surface`: root page, BentoML's own UI and metrics), and `NoStore` marking every API answer not to be
cached."""

from __future__ import annotations

import logging

from fastapi import HTTPException
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

MAX_BODY = 1_000_000  # bytes
log = logging.getLogger("phm.serving")


class BodyLimit:
    """Refuse bodies over MAX_BODY bytes with 413 (declared or streamed), as plain ASGI (cheap); the routes in
    `larger` (full path -> bytes) have their own limit."""

    def __init__(self, app, larger: dict[str, int] | None = None) -> None:
        self.app, self.larger = app, larger or {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        root, path = scope.get("root_path", "") or "", scope.get("path", "")
        limit = self.larger.get(path if path.startswith(root) else root + path, MAX_BODY)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return await JSONResponse({"detail": f"request body over {limit:,} bytes"}, status_code=413)(
                scope, receive, send
            )
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise HTTPException(413, f"request body over {limit:,} bytes")
            return message

        return await self.app(scope, limited, send)


class Guard:
    """Answer 500 without a stack trace (in the response or the log) when a handler fails unexpectedly."""

    def __init__(self, app, log: logging.Logger, html: bool = False) -> None:
        self.app, self.log, self.html = app, log, html

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracked(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:  # noqa: BLE001 - the point of the guard
            self.log.error("unexpected %s while answering %s", type(exc).__name__, scope.get("path", ""))
            if started:
                return
            if self.html:
                response = HTMLResponse(
                    '<!DOCTYPE html><html lang="en-GB"><head><meta charset="utf-8"><title>Sorry'
                    "</title></head><body><h1>Sorry, something went wrong</h1><p>The service log "
                    "has the error type. Go back and try again.</p></body></html>",
                    status_code=500,
                )
            else:
                response = JSONResponse(
                    {"detail": "internal error; the service log has the error type"}, status_code=500
                )
            await response(scope, receive, send)


class Surface:
    """What BentoML itself would serve outside /api and /ui: the root page (BentoML's Swagger UI, which loads a
    third-party tag-manager script) redirects to our pages; its UI assets and schema are not served; /metrics
    is served only as the `service.metrics` setting says (off, a data scientist's bearer token, or open)."""

    HIDDEN = ("/docs.json", "/schema.json", "/static_content", "/assets")

    def __init__(self, app, metrics: str = "off", users=None, home=None) -> None:
        self.app, self.metrics, self.users = app, metrics, users
        # a data scientist's metrics are a protected route: each request in the access log, refusals included
        self.logged = None
        if metrics == "data_scientist" and home is not None:
            from serving.access import AccessLog

            self.logged = AccessLog(self._metrics, home=home, protected=lambda _m, _p: True, log=log)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if path == "/" and scope["method"] in ("GET", "HEAD"):
            return await RedirectResponse("/ui/", status_code=303)(scope, receive, send)
        if any(path == p or path.startswith(p + "/") for p in self.HIDDEN):
            return await JSONResponse({"detail": "Not Found"}, status_code=404)(scope, receive, send)
        if path == "/metrics":
            return await (self.logged or self._metrics)(scope, receive, send)
        return await self.app(scope, receive, send)

    async def _metrics(self, scope, receive, send):
        refusal = self._metrics_refusal(scope)
        return await (refusal or self.app)(scope, receive, send)

    def _metrics_refusal(self, scope):
        if self.metrics == "open":
            return None
        if self.metrics == "off" or self.users is None:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        token = header[7:].strip() if header.lower().startswith("bearer ") else None
        try:
            user = self.users(token)
        except Exception:  # noqa: BLE001 - an unreadable user list refuses, as everywhere
            return JSONResponse({"detail": "the user list cannot be read"}, status_code=503)
        if user is not None:
            scope.setdefault("state", {})["phm_user"] = user  # named in the access log
        if user is None:
            return JSONResponse(
                {"detail": "a data scientist's bearer token is needed"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        if user.role.value != "data_scientist":
            return JSONResponse({"detail": f"the {user.role.value} role cannot read metrics"}, status_code=403)
        return None


class NoStore:
    """Every answer marked not to be kept by a browser or proxy cache (`Cache-Control: no-store`) and not to be
    read as another content type (`nosniff`): API answers carry person-level rows, unless a route set its own."""

    HEADERS = ((b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff"))

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def marked(message):
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _v in message.get("headers", [])}
                extra = [(k, v) for k, v in self.HEADERS if k not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, marked)
