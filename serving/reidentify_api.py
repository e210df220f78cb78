"""`POST /api/worklist/reidentify`: a care coordinator's practice list in (a `text/csv` body, or a multipart form
with a `file` part), the people of their worklist found in it out, with NHS number and name (JSON, or CSV with
`format=csv`). Read in memory only and answered with `Cache-Control: no-store`; the access log records the
purpose, how many and the pseudonymised ids returned (`serving.reidentify`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from features.sources.practice_list import MAX_BYTES
from serving.access import record
from serving.reidentify import Reidentified, as_csv, log_fields, reidentify
from serving.schemas import Band
from serving.state import ServiceState
from serving.upload import read_upload
from serving.users import User

ROUTE = "/worklist/reidentify"
BODY_LIMIT = MAX_BYTES + 65_536  # the list plus a multipart form's framing
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def router(state: Callable, coordinator: Callable) -> APIRouter:
    """The route, given the API's dependencies for the service state and a signed-in care coordinator."""
    api = APIRouter()

    @api.post(
        ROUTE,
        tags=["risk"],
        response_model=Reidentified,
        openapi_extra={
            "requestBody": {
                "content": {
                    "text/csv": {"schema": {"type": "string"}},
                    "multipart/form-data": {
                        "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
                    },
                }
            }
        },
    )
    async def reidentify_route(
        request: Request,
        st: ServiceState = Depends(state),
        u: User = Depends(coordinator),
        practice: Annotated[list[str] | None, Query(max_length=50)] = None,
        min_band: Band = Band.raised,
        format: Literal["json", "csv"] = "json",
    ):
        """Find the people of your worklist in your practice's registered list (CSV with columns NHS number, name,
        date of birth; other columns are kept for display) for direct care. Numbers of people outside your
        practices reveal nothing; malformed numbers are listed by row. Nothing is stored."""
        data, _ = await read_upload(request)
        result = reidentify(st, u, data, min_band, practice)
        record(
            request,
            people=[p["person_id"] for p in result.people],
            practices=result.summary.practices,
            extra=log_fields(result),
        )
        if format == "csv":
            return Response(
                as_csv(result),
                media_type="text/csv",
                headers={
                    **NO_STORE,
                    "Content-Disposition": f"attachment; filename=reidentified_{result.summary.snapshot_date}.csv",
                },
            )
        return Response(result.to_json(), media_type="application/json", headers=NO_STORE)

    return api
