"""The HTTP API (FastAPI, mounted on the BentoML service at /api): typed requests and responses, bearer
tokens mapped to roles and practice scopes, disclosure control for aggregates, an access-log entry for
every request but the public health check (refusals included; 503 when it cannot be written), and 4xx
answers (never a stack trace) for bad input. No documentation UI is served (it would load third-party
scripts); the OpenAPI schema is at /api/openapi.json."""

from __future__ import annotations

import logging

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from serving import api_demand, api_models, api_risk, reidentify_api
from serving.access import AccessLog
from serving.api_deps import allow, bearer, state, user
from serving.api_events import events_router
from serving.api_fhir import fhir_router
from serving.asgi import BodyLimit, Guard, NoStore
from serving.queries import QueryError
from serving.state import ServiceState
from serving.users import Role, User

log = logging.getLogger("phm.serving")
PUBLIC = {"/api/health", "/api/openapi.json"}


def create_app() -> FastAPI:
    app = FastAPI(
        title="PHM Intelligence API",
        version="1",
        docs_url=None,
        redoc_url=None,
        description="Risk worklists, cohort scoring, demand forecasts and bias reports for an ICS.",
    )

    def home():
        found = getattr(app.state, "phm", None)
        return found.settings.home if found is not None else None

    app.add_middleware(BodyLimit, larger={"/api" + reidentify_api.ROUTE: reidentify_api.BODY_LIMIT})
    app.add_middleware(Guard, log=log)
    app.add_middleware(AccessLog, home=home, protected=lambda _method, path: path not in PUBLIC, log=log)
    app.add_middleware(NoStore)  # outermost: every answer, refusals and the access log's 503 included

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError):
        errors = [{"loc": list(e.get("loc", [])), "msg": e.get("msg", "")} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(QueryError)
    async def refused(_request: Request, exc: QueryError):
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    @app.get("/health", tags=["service"])
    def health(request: Request, st: ServiceState = Depends(state)) -> dict:
        """ "ok" to anyone; with a user's token also what is loaded (snapshot date, model versions); a data feed's
        token reads nothing, this included."""
        try:
            known = bearer(request, st)
        except HTTPException:
            known = None
        reads = known is not None and known.role != Role.data_feed
        return {"status": "ok", **(st.describe() if reads else {})}

    @app.get("/me", tags=["service"])
    def me(u: User = Depends(user)) -> dict:
        return {"name": u.name, "role": u.role.value, "practices": u.practices}

    app.include_router(api_risk.router())
    app.include_router(api_demand.router())
    app.include_router(api_models.router())

    @app.post("/admin/reload", tags=["service"])
    def reload(st: ServiceState = Depends(state), u: User = Depends(allow(Role.data_scientist))) -> dict:
        """Pick up a new champion, snapshot or user list without a restart."""
        return st.reload()

    app.include_router(events_router(state, bearer))
    app.include_router(fhir_router(state, allow(Role.coordinator)))
    app.include_router(reidentify_api.router(state, allow(Role.coordinator)))
    return app
