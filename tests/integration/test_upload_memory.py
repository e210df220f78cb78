"""An upload that may hold identifiers never touches the disk: `serving.upload.read_upload` splits a multipart
body of over 1 MiB in memory, watched by a Python audit hook that sees every file opened for writing and every
temporary file made. Control: Starlette's own form parser, given the same body, spools it to a temporary file
(which is why the service does not use it for uploads)."""

from __future__ import annotations

import asyncio
import os
import sys

import httpx
from starlette.requests import Request

from serving.upload import read_upload

EVENTS: list[tuple] = []
WATCHING = [False]


def _writes(args: tuple) -> bool:
    """An `open` audit event that may write: a mode with w/a/x/+ (open()) or write flags (os.open, O_TMPFILE)."""
    mode = args[1] if len(args) > 1 else None
    flags = args[2] if len(args) > 2 else 0
    return (isinstance(mode, str) and any(m in mode for m in "wax+")) or (
        isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) != 0
    )


def _hook(event: str, args: tuple) -> None:
    if not WATCHING[0]:
        return
    if event.startswith("tempfile.") or (event == "open" and _writes(args)):
        EVENTS.append((event, str(args[0])[:80]))


sys.addaudithook(_hook)


def _request(body: bytes, content_type: str) -> Request:
    chunks = [body[i : i + 65_536] for i in range(0, len(body), 65_536)]

    async def receive():
        return {"type": "http.request", "body": chunks.pop(0) if chunks else b"", "more_body": bool(chunks)}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/ui/worklist/reidentify",
        "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())],
    }
    return Request(scope, receive)


def _multipart(data: bytes) -> tuple[bytes, str]:
    built = httpx.Request(
        "POST", "http://x/", files={"file": ("list.csv", data, "text/csv")}, data={"csrf": "token-1", "format": "csv"}
    )
    return built.read(), built.headers["content-type"]


def _watched(coro):
    EVENTS.clear()
    WATCHING[0] = True
    try:
        return asyncio.run(coro)
    finally:
        WATCHING[0] = False


def test_a_large_multipart_upload_is_read_in_memory() -> None:
    data = b"NHS number,Name,Date of birth\n" + b"9434765919,Ann Example,1950-01-01\n" * 40_000
    body, ctype = _multipart(data)
    assert len(body) > 1_048_576
    got, fields = _watched(read_upload(_request(body, ctype)))
    assert got == data and fields == {"csrf": "token-1", "format": "csv"}
    assert EVENTS == []


def test_control_starlettes_form_parser_spools_the_same_body_to_disk() -> None:
    data = b"NHS number,Name,Date of birth\n" + b"9434765919,Ann Example,1950-01-01\n" * 40_000
    body, ctype = _multipart(data)

    async def parse():
        form = await _request(body, ctype).form()
        await form.close()

    _watched(parse())
    assert EVENTS and all(e[0] == "open" for e in EVENTS)  # a temporary file opened for writing


def test_a_csv_body_is_the_file() -> None:
    got, fields = _watched(read_upload(_request(b"a,b\n1,2\n", "text/csv")))
    assert (got, fields, EVENTS) == (b"a,b\n1,2\n", {}, [])
