"""Plain ASGI wrappers shared by the API and the pages: a request-body limit (413) and a guard that turns
any unexpected error into a short 500 answer with no stack trace, logging only the error's type."""

from __future__ import annotations

import logging

from fastapi import HTTPException
from fastapi.responses import HTMLResponse, JSONResponse

MAX_BODY = 1_000_000  # bytes


class BodyLimit:
    """Refuse bodies over MAX_BODY bytes with 413 (declared or streamed), as plain ASGI (cheap)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return await JSONResponse({"detail": f"request body over {MAX_BODY:,} bytes"}, status_code=413)(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_BODY:
                raise HTTPException(413, f"request body over {MAX_BODY:,} bytes")
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
                response = HTMLResponse("<!DOCTYPE html><html lang=\"en-GB\"><head><meta charset=\"utf-8\"><title>Sorry"
                                        "</title></head><body><h1>Sorry, something went wrong</h1><p>The service log "
                                        "has the error type. Go back and try again.</p></body></html>", status_code=500)
            else:
                response = JSONResponse({"detail": "internal error; the service log has the error type"}, status_code=500)
            await response(scope, receive, send)
