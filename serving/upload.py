"""A file upload read into memory only. Starlette's form parser writes file parts to a spooled temporary file,
which goes to disk past 1 MiB; an upload that may hold identifiers must never touch the disk, so the body (capped
by `serving.asgi.BodyLimit`) is read into memory and a multipart body is split here with python-multipart's
streaming parser, every part kept in memory. A `text/csv` body is the file itself."""

from __future__ import annotations

from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header

from serving.queries import QueryError

MAX_FIELDS = 10


async def read_upload(request: Request, file_field: str = "file") -> tuple[bytes, dict[str, str]]:
    """The uploaded file's bytes and the form's other (text) fields. A multipart form must carry `file_field`;
    any other content type is taken as the file itself."""
    body = await request.body()
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data":
        return body, {}
    boundary = params.get(b"boundary")
    if not boundary:
        raise QueryError(400, "the multipart form has no boundary")
    parts: list[dict] = []
    header = {"field": b"", "value": b""}

    def begin() -> None:
        if len(parts) >= MAX_FIELDS:
            raise QueryError(400, f"the form has more than {MAX_FIELDS} parts")
        parts.append({"headers": {}, "data": bytearray()})

    def field(data: bytes, start: int, end: int) -> None:
        header["field"] += data[start:end]

    def value(data: bytes, start: int, end: int) -> None:
        header["value"] += data[start:end]

    def header_end() -> None:
        parts[-1]["headers"][header["field"].lower()] = header["value"]
        header["field"], header["value"] = b"", b""

    def data(chunk: bytes, start: int, end: int) -> None:
        parts[-1]["data"] += chunk[start:end]

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": begin,
            "on_header_field": field,
            "on_header_value": value,
            "on_header_end": header_end,
            "on_part_data": data,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except QueryError:
        raise
    except Exception:  # noqa: BLE001 - python-multipart raises several error types for a malformed body
        raise QueryError(400, "the multipart form cannot be read") from None
    upload, fields = None, {}
    for part in parts:
        _, disp = parse_options_header(part["headers"].get(b"content-disposition", b""))
        name = disp.get(b"name", b"").decode("utf-8", "replace")
        if name == file_field:
            upload = bytes(part["data"])
        elif name:
            fields[name] = bytes(part["data"][:2000]).decode("utf-8", "replace")
    if upload is None:
        raise QueryError(422, f"the form has no {file_field!r} file")
    return upload, fields
