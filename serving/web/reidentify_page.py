"""The Worklist page's re-identification (care coordinators): upload the practice's registered list (a multipart
form with the session's CSRF token, read in memory only) and see, or download as CSV, the worklist's people with
their NHS numbers and names. Nothing is stored; the page is sent with `Cache-Control: no-store` and the access log
records the purpose, how many and the pseudonymised ids shown (`serving.reidentify`)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import Response

from serving.access import record
from serving.queries import QueryError
from serving.reidentify import as_csv, log_fields, reidentify
from serving.reidentify_api import BODY_LIMIT, NO_STORE
from serving.schemas import Band
from serving.upload import read_upload

ROUTE = "/worklist/reidentify"
LIMITS = {"/ui" + ROUTE: BODY_LIMIT}  # for the pages' body limit


def add_routes(app: FastAPI, render: Callable, signed_in: Callable, check_form: Callable) -> None:
    """Add the upload route to the pages app (given its page renderer, sign-in and CSRF checks)."""

    @app.post(ROUTE)
    async def reidentify_page(request: Request):
        st, u = signed_in(request, "worklist")
        data, form = await read_upload(request)
        check_form(request, form)
        band = form.get("band", Band.raised.value)
        if band not in {b.value for b in Band}:
            raise QueryError(422, "Choose a band from the list.")
        practice = form.get("practice", "").strip()
        result = reidentify(st, u, data, Band(band), [practice] if practice else None)
        record(
            request,
            people=[p["person_id"] for p in result.people],
            practices=result.summary.practices,
            extra=log_fields(result),
        )
        if form.get("format") == "csv":
            return Response(
                as_csv(result),
                media_type="text/csv",
                headers={
                    **NO_STORE,
                    "Content-Disposition": f"attachment; filename=reidentified_{result.summary.snapshot_date}.csv",
                },
            )
        response = render(
            request, "reidentified.html", user=u, title="Worklist", result=result.summary, people=result.people
        )
        response.headers.update(NO_STORE)
        return response
