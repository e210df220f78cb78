"""`POST /api/events`: a hospital feed posts HL7 v2 ADT messages (one or more, `MSH|` first) or FHIR R4 JSON (an
Encounter or a Bundle of them). Only the `data_feed` role may post, and that role reads nothing else (the API's
`user` dependency refuses it everywhere but here). The answer counts what was stored, skipped as a duplicate
and quarantined (by reason); 422 when nothing in the body could be stored, so the sender's engine alerts; 503 when
the event store cannot be written (nothing of the post stored: the sender resends)."""

from __future__ import annotations

from collections.abc import Callable
from threading import Lock

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse

from features.events.checks import Known
from features.events.drop import messages_in
from features.events.store import StoreFullError, ingest, known_in, pseudonymiser_for
from serving.access import record
from serving.state import ServiceState
from serving.users import Role, User

_known: dict[tuple[str, float], Known] = {}
_known_lock = Lock()


def warehouse_known(st: ServiceState) -> Known:
    """The warehouse's sites and people, read once per warehouse file version (a reload re-reads them)."""
    path = st.settings.warehouse_path
    key = (str(path), path.stat().st_mtime if path.exists() else 0.0)
    with _known_lock:
        if key not in _known:
            _known.clear()
            _known[key] = known_in(path)
        return _known[key]


def events_router(state: Callable, bearer: Callable) -> APIRouter:
    """The router, given the API's service-state dependency and its bearer-token reader."""
    router = APIRouter()

    async def feed(request: Request, st: ServiceState = Depends(state)) -> User:
        found = bearer(request, st)
        if found is None:
            raise HTTPException(
                401,
                "a valid bearer token is needed (create one with `phm users add --role data_feed`)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        record(request, user=found)
        if found.role != Role.data_feed:
            raise HTTPException(403, f"the {found.role.value} role cannot post events")
        return found

    @router.post("/events", tags=["events"])
    async def post_events(request: Request, st: ServiceState = Depends(state), _u: User = Depends(feed)):
        body = (await request.body()).decode("utf-8", errors="replace")
        ndjson = "ndjson" in request.headers.get("content-type", "")
        messages = [("api", m) for m in messages_in(body, ndjson=ndjson)]
        if not messages:
            raise HTTPException(422, "the body holds no message (HL7 v2 starting with MSH, or FHIR JSON)")
        from starlette.concurrency import run_in_threadpool

        try:
            report = await run_in_threadpool(
                ingest, st.settings, messages, warehouse_known(st), pseudonymiser_for(st.settings)
            )
        except StoreFullError as exc:  # fail closed: the sender's engine keeps the messages and resends
            stored = (
                f"its {exc.stored:,} accepted events were stored but not its quarantined messages"
                if exc.stored
                else "nothing in this post was stored"
            )
            raise HTTPException(
                503,
                f"the event store cannot be written (is the disk full?): {stored}; send it again later "
                "(what was stored is then a duplicate)",
                headers={"Retry-After": "60"},
            ) from exc
        answer = report.to_json()  # the worklist follows at the next `phm events refresh` (or `ingest --refresh`)
        status = 422 if report.accepted == 0 and report.duplicates == 0 else 200
        return JSONResponse(answer, status_code=status)

    return router
