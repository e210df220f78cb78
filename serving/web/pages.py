"""The web pages (FastAPI, mounted on the BentoML service at /ui): sign in with a token, then the
Worklist (care coordinators), Capacity (planners), Equity (clinical safety officers) and Models pages.
Server-side rendered HTML with no scripts; the same roles, scopes, disclosure control and access log as the API.
Sessions are held server-side (`serving.sessions`): signing out, an idle half hour, or a change to the user
ends them at once."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from serving.access import AccessLog
from serving.asgi import BodyLimit, Guard
from serving.queries import QueryError
from serving.web import capacity_page, equity_pages, model_pages, outcome_pages, reidentify_page, signin, worklist_pages
from serving.web.signin import SignInNeeded, check_form, signed_in
from serving.web.templating import HERE, PREFIX, SECURITY_HEADERS, render

log = logging.getLogger("phm.serving.pages")


def _protected(method: str, path: str) -> bool:
    """Every page but the sign-in form and the style sheet is logged."""
    return not (path.startswith(PREFIX + "/static/") or (method in ("GET", "HEAD") and path == PREFIX + "/signin"))


def _session_quietly(request: Request):
    """The session of a request refused before its page read it (an address that fails validation, an unknown
    page): noted so that the access log names who was refused. None when there is none or it cannot be read."""
    try:
        return signin.session_of(request, signin.state(request))
    except HTTPException:
        return None


def create_pages() -> FastAPI:
    app = FastAPI(title="PHM Intelligence pages", docs_url=None, redoc_url=None, openapi_url=None)

    def phm_home():
        found = getattr(app.state, "phm", None)
        return found.settings.home if found is not None else None

    app.add_middleware(BodyLimit, larger=reidentify_page.LIMITS)
    app.add_middleware(Guard, log=log, html=True)
    app.add_middleware(AccessLog, home=phm_home, protected=_protected, log=log, html=True)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        return response

    @app.exception_handler(SignInNeeded)
    async def to_signin(_request: Request, exc: SignInNeeded):
        query = {"next": exc.next_path, **({"unsent": "true"} if exc.unsent else {})}
        return RedirectResponse(f"{PREFIX}/signin?{urlencode(query)}", status_code=303)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return error_page(request, exc.status_code, str(exc.detail))

    @app.exception_handler(QueryError)
    async def query_error(request: Request, exc: QueryError):
        return error_page(request, exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        fields = "; ".join(
            f"{'.'.join(str(x) for x in e.get('loc', [])[1:])}: {e.get('msg', '')}" for e in exc.errors()
        )
        return error_page(request, 422, f"Some of the choices in the address are not valid ({fields}).")

    def error_page(request: Request, status: int, message: str) -> HTMLResponse:
        found = getattr(request.state, "phm_session", None) or _session_quietly(request)
        u = found.user if found is not None else None
        titles = {
            401: "Sign in needed",
            403: "Not available to you",
            404: "Not found",
            409: "Not ready yet",
            413: "Too much data",
            422: "Check your choices",
            503: "Starting up",
        }
        return render(request, "error.html", status=status, user=u, title=titles.get(status, "Sorry"), message=message)

    signin.register(app)
    worklist_pages.register(app)
    outcome_pages.register(app, render, signed_in, check_form)
    capacity_page.register(app)
    equity_pages.register(app)
    model_pages.register(app)
    reidentify_page.add_routes(app, render, signed_in, check_form)
    return app
