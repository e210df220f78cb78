"""The web pages (FastAPI, mounted on the BentoML service at /ui): sign in with a token, then the
Worklist (care coordinators), Capacity (planners), Equity (clinical safety officers) and Models pages.
Server-side rendered HTML with no scripts; the same roles, scopes, disclosure control and access log as the API.
Sessions are held server-side (`serving.sessions`): signing out, an idle half hour, or a change to the user
ends them at once."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from phm.operational.database import DatabaseError
from serving import queries, sessions
from serving.access import AccessLog, record
from serving.asgi import BodyLimit, Guard
from serving.queries import QueryError
from serving.schemas import Band, ModelName, Sort, WorklistQuery
from serving.sessions import Session
from serving.state import ServiceState, UsersUnavailable
from serving.users import Role, User, authenticate
from serving.web import outcome_pages, reidentify_page, views
from serving.web.outcome_pages import OUTCOME_WORDS
from serving.web.templating import HERE, HOME, PAGES, PREFIX, ROLE_WORDS, SECURITY_HEADERS, env

log = logging.getLogger("phm.serving.pages")


class SignInNeeded(Exception):
    """No valid session: send the browser to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


def _protected(method: str, path: str) -> bool:
    """Every page but the sign-in form and the style sheet is logged."""
    return not (path.startswith(PREFIX + "/static/") or (method in ("GET", "HEAD") and path == PREFIX + "/signin"))


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

    def render(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
        u: User | None = context.pop("user", None)
        found: Session | None = getattr(request.state, "phm_session", None)
        nav = [{"key": k, "title": t, "href": f"{PREFIX}/{k}"} for k, (t, roles) in PAGES.items() if u and u.role in roles]
        html = env.get_template(template).render(
            prefix=PREFIX, user=u, role_words=ROLE_WORDS.get(u.role) if u else None, nav=nav,
            csrf=found.csrf if u and found else "", **context)
        return HTMLResponse(html, status_code=status)

    def state(request: Request) -> ServiceState:
        found = getattr(request.app.state, "phm", None)
        if found is None:
            raise HTTPException(503, "The service is starting. Try again in a minute.")
        found.maybe_refresh()
        return found

    def home(request: Request) -> Path:
        return state(request).settings.home

    def session_of(request: Request, st: ServiceState) -> Session | None:
        """The live session of the request's cookie (also noted for the access log and the forms)."""
        try:
            st.ensure_schema()
            found = st.sessions.lookup(request.cookies.get(sessions.COOKIE), st.users.by_name)
        except UsersUnavailable as exc:
            raise HTTPException(503, "Signing in is unavailable just now: the service cannot read its list of "
                                     "users. Tell your administrator.") from exc
        except DatabaseError as exc:
            log.error("%s", exc)
            raise HTTPException(503, "Signing in is unavailable just now: the session store cannot be reached. "
                                     "Tell your administrator.") from exc
        if found is not None:
            request.state.phm_session = found
            record(request, user=found.user)
        return found

    def signed_in(request: Request, page: str | None = None) -> tuple[ServiceState, User]:
        st = state(request)
        found = session_of(request, st)
        if found is None:
            raise SignInNeeded(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        u = found.user
        if page is not None and u.role not in PAGES[page][1]:
            raise HTTPException(403, f"The {PAGES[page][0]} page is not available to a {ROLE_WORDS[u.role]}.")
        return st, u

    def check_form(request: Request, form) -> None:
        if not sessions.csrf_ok(getattr(request.state, "phm_session", None), form.get("csrf")):
            raise HTTPException(403, "This form has expired. Go back, reload the page and try again.")

    @app.exception_handler(SignInNeeded)
    async def to_signin(_request: Request, exc: SignInNeeded):
        return RedirectResponse(f"{PREFIX}/signin?{urlencode({'next': exc.next_path})}", status_code=303)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return error_page(request, exc.status_code, str(exc.detail))

    @app.exception_handler(QueryError)
    async def query_error(request: Request, exc: QueryError):
        return error_page(request, exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        fields = "; ".join(f"{'.'.join(str(x) for x in e.get('loc', [])[1:])}: {e.get('msg', '')}" for e in exc.errors())
        return error_page(request, 422, f"Some of the choices in the address are not valid ({fields}).")

    def error_page(request: Request, status: int, message: str) -> HTMLResponse:
        found = getattr(request.state, "phm_session", None)
        u = found.user if found is not None else None
        titles = {401: "Sign in needed", 403: "Not available to you", 404: "Not found", 409: "Not ready yet",
                  413: "Too much data", 422: "Check your choices", 503: "Starting up"}
        return render(request, "error.html", status=status, user=u, title=titles.get(status, "Sorry"), message=message)

    # ---- sign in ---------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def index(request: Request):
        st, u = signed_in(request)
        return RedirectResponse(f"{PREFIX}/{HOME[u.role]}", status_code=303)

    def signin_page(request: Request, target: str, status: int = 200, error: str | None = None) -> HTMLResponse:
        """The sign-in form with a fresh login-CSRF token bound to a short-lived cookie."""
        nonce = sessions.signin_nonce()
        service = state(request).settings.service
        response = render(request, "signin.html", status=status, title="Sign in", next=target, error=error,
                          signin_csrf=sessions.signin_token(home(request), nonce), hours=service.session_hours,
                          idle=service.idle_minutes)
        response.set_cookie(sessions.SIGNIN_COOKIE, nonce, max_age=sessions.SIGNIN_LIFETIME, httponly=True,
                            samesite="strict", secure=_secure(request), path=PREFIX)
        return response

    @app.get("/signin")
    def signin_form(request: Request, next: Annotated[str, Query(max_length=500)] = ""):
        return signin_page(request, _safe_next(next))

    @app.post("/signin")
    async def signin(request: Request):
        form = await request.form()
        st = state(request)
        target = _safe_next(str(form.get("next", "")))
        if not sessions.signin_ok(st.settings.home, request.cookies.get(sessions.SIGNIN_COOKIE), form.get("csrf")):
            return signin_page(request, target, status=403, error="This sign-in form has expired or did not come from "
                               "this service. Enter your access token again.")
        token = str(form.get("token", "")).strip()
        try:
            u = authenticate(st.users.by_digest, token) if token else None
        except UsersUnavailable as exc:
            raise HTTPException(503, "Signing in is unavailable just now: the service cannot read its list of users. "
                                     "Tell your administrator.") from exc
        if u is None:
            return signin_page(request, target, status=401, error="That access token was not recognised. Check it and "
                               "try again, or ask your administrator for a new one.")
        if u.role == Role.data_feed:  # a feed's token posts events and never signs in to pages
            return signin_page(request, target, status=403, error="This token belongs to a data feed; it cannot sign in.")
        record(request, user=u)
        page = target.removeprefix(PREFIX + "/").split("?")[0].split("/")[0]
        if not target or page not in PAGES or u.role not in PAGES[page][1]:
            target = f"{PREFIX}/{HOME[u.role]}"
        try:
            st.ensure_schema()
            cookie = st.sessions.issue(u)
        except DatabaseError as exc:
            log.error("%s", exc)
            raise HTTPException(503, "Signing in is unavailable just now: the session store cannot be reached. "
                                     "Tell your administrator.") from exc
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(sessions.COOKIE, cookie, max_age=int(st.sessions.lifetime.total_seconds()),
                            httponly=True, samesite="strict", secure=_secure(request), path=PREFIX)
        response.delete_cookie(sessions.SIGNIN_COOKIE, path=PREFIX)
        return response

    @app.post("/signout")
    async def signout(request: Request):
        st = state(request)
        session_of(request, st)
        check_form(request, await request.form())
        st.sessions.end(request.cookies.get(sessions.COOKIE), "signed out")
        response = RedirectResponse(f"{PREFIX}/signin", status_code=303)
        response.delete_cookie(sessions.COOKIE, path=PREFIX)
        return response

    # ---- worklist ----------------------------------------------------------------------------------
    def filters(practice: Annotated[str, Query(max_length=20)] = "", segment: Annotated[str, Query(max_length=40)] = "",
                condition: Annotated[str, Query(max_length=40)] = "", band: Band = Band.raised,
                sort: Sort = "risk",
                top: Annotated[int, Query(ge=1, le=500)] = 100, new: Literal["", "week"] = "") -> dict:
        """The Worklist form's choices (the page and its CSV link take the same ones)."""
        return {"practice": practice, "segment": segment, "condition": condition, "band": band.value, "sort": sort,
                "top": top, "new": new}

    def worklist_query(f: dict) -> WorklistQuery:
        return WorklistQuery(practice=[f["practice"]] if f["practice"] else None, segment=f["segment"] or None,
                             condition=f["condition"] or None, min_band=f["band"], sort=f["sort"], top=f["top"],
                             new_within_days=7 if f["new"] == "week" else None)

    @app.get("/worklist")
    def worklist(request: Request, f: dict = Depends(filters)):
        st, u = signed_in(request, "worklist")
        result = queries.worklist(st, u, worklist_query(f))
        record(request, people=[r.person_id for r in result.rows], practices=result.practices)
        meta, scores = queries.snapshot(st)
        mine = scores[scores.practice_code.isin(u.practices)]
        return render(request, "worklist.html", user=u, title="Worklist", result=result, meta=meta,
                      view=views.worklist_view(result, mine, meta), params=f,
                      csv_href=f"{PREFIX}/worklist.csv?{urlencode(f)}",
                      options=views.worklist_options(mine, u.practices, st.bundle.practices), outcomes=OUTCOME_WORDS)

    @app.get("/worklist.csv")
    def worklist_csv(request: Request, f: dict = Depends(filters)):
        st, u = signed_in(request, "worklist")
        result = queries.worklist(st, u, worklist_query(f))
        record(request, people=[r.person_id for r in result.rows], practices=result.practices)
        return Response(queries.worklist_csv(result), media_type="text/csv", headers={
            "Content-Disposition": f"attachment; filename=worklist_{result.snapshot_date}.csv", "Cache-Control": "no-store"})

    outcome_pages.register(app, render, signed_in, check_form)

    # ---- capacity ----------------------------------------------------------------------------------
    @app.get("/capacity")
    def capacity(request: Request, site: Annotated[str, Query(max_length=20)] = "ICS",
                 horizon: Annotated[int, Query(ge=7, le=90)] = 28,
                 top_percent: Annotated[float | None, Query(gt=0, le=50)] = None,
                 prevented_percent: Annotated[float | None, Query(ge=0, le=100)] = None):
        st, u = signed_in(request, "capacity")
        sites = queries.forecast_sites(st)
        if not sites:
            raise QueryError(409, "There are no forecasts yet. A data scientist runs `phm forecast fit` to make them.")
        if site not in sites:
            raise QueryError(404, f"There is no forecast for site {site!r}. Choose one of {', '.join(sites)}.")
        scenario = None
        if top_percent is not None and prevented_percent is not None:
            if u.role not in (Role.planner, Role.data_scientist):
                raise HTTPException(403, "Scenarios are for planners and data scientists.")
            scenario = {"top_share": top_percent / 100, "prevented_share": prevented_percent / 100}
        charts, missing = [], []
        for i, (metric, words, _) in enumerate(views.METRICS):
            try:
                charts.append(views.capacity_chart(st, site, metric, horizon, scenario, i))
            except QueryError as exc:  # a series the fit refused (too short, mostly zeros): say so, show the rest
                if exc.status != 404:
                    raise
                missing.append({"title": words, "why": exc.message})
        summary = queries.cohort_summary(st, u, "band")
        return render(request, "capacity.html", user=u, title="Capacity", site=site, sites=sites, horizon=horizon,
                      charts=charts, missing=missing, scenario=scenario, top_percent=top_percent or 5, can_plan=u.role != Role.safety_officer,
                      prevented_percent=20 if prevented_percent is None else prevented_percent, summary=summary,
                      by_pcn=queries.cohort_summary(st, u, "pcn"), policy_words=st.policy.words())

    # ---- equity ------------------------------------------------------------------------------------
    @app.get("/equity")
    def equity(request: Request, model: ModelName | None = None,
               version: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
               done: Literal["approved", "rejected", "change approved", "change rejected"] | None = None):
        st, u = signed_in(request, "equity")
        versions = views.model_versions(st)
        chosen = views.pick_version(versions, model, version)
        report = views.equity_view(st, chosen) if chosen else None
        from serving.governance.monitoring import latest

        watched = [dict(a, model=m["model"], version=m["version"], as_of=m["as_of"]) for m in latest(st.settings).values()
                   for a in m["alerts"] if a["kind"] == "fairness"]
        return render(request, "equity.html", user=u, title="Equity", versions=versions, chosen=chosen, report=report,
                      done=done, can_decide=u.role == Role.safety_officer, fairness_alerts=watched,
                      case=views.safety_case(st, chosen) if chosen else None, paused=st.bundle.snapshot_refusal,
                      refusals=st.bundle.refusals)

    @app.get("/equity/{name}/{version}/report")
    def equity_report(request: Request, name: ModelName,
                      version: Annotated[int, PathParam(ge=1, le=1_000_000)]):
        st, u = signed_in(request, "equity")
        from evaluation.fairness.report_html import render as render_report
        from evaluation.fairness.results import AuditResult

        report = queries.bias_report(st, name, version)
        return HTMLResponse(_no_favicon(render_report(AuditResult.model_validate(report))))

    @app.post("/equity/{name}/{version}/decision")
    async def equity_decision(request: Request, name: ModelName,
                              version: Annotated[int, PathParam(ge=1, le=1_000_000)]):
        st, u = signed_in(request, "equity")
        form = await request.form()
        check_form(request, form)
        if u.role != Role.safety_officer:
            raise HTTPException(403, "Only a clinical safety officer can approve or reject a model.")
        from serving.governance.safety_case import SafetyCaseError
        from serving.governance.signoff import decide

        decision = str(form.get("decision", ""))
        reason = str(form.get("reason", "")).strip()
        if decision not in ("approved", "rejected"):
            raise QueryError(422, "Choose approve or reject.")
        if len(reason) < 3 or len(reason) > 2000:
            raise QueryError(422, "Give a reason for your decision (3 to 2,000 characters).")
        report = str(form.get("report", "")).strip().lower()
        if not re.fullmatch(r"[0-9a-f]{8,64}", report):
            raise QueryError(422, "The form does not say which report you read. Reload the page and try again.")
        try:
            decide(st.settings, name, version, decision, u.name, reason, accept_flags=form.get("accept_flags") == "yes",
                   report=report, via="service")
        except SafetyCaseError as exc:
            raise QueryError(409, str(exc)) from exc
        return RedirectResponse(f"{PREFIX}/equity?{urlencode({'model': name, 'version': version, 'done': decision})}",
                                status_code=303)

    @app.post("/equity/{name}/{version}/change")
    async def equity_change(request: Request, name: ModelName,
                            version: Annotated[int, PathParam(ge=1, le=1_000_000)]):
        """A safety officer's change-impact review of the configuration in force (as `phm audit approve-change`)."""
        st, u = signed_in(request, "equity")
        form = await request.form()
        check_form(request, form)
        if u.role != Role.safety_officer:
            raise HTTPException(403, "Only a clinical safety officer can approve or reject a configuration change.")
        from serving.governance.safety_case import SafetyCaseError, review_change

        decision = str(form.get("decision", ""))
        reason = str(form.get("reason", "")).strip()
        configuration = str(form.get("configuration", "")).strip().lower()
        if decision not in ("approved", "rejected"):
            raise QueryError(422, "Choose approve or reject the change.")
        if len(reason) < 3 or len(reason) > 2000:
            raise QueryError(422, "Give a reason for your decision on the change (3 to 2,000 characters).")
        if not re.fullmatch(r"[0-9a-f]{8,64}", configuration):
            raise QueryError(422, "The form does not say which configuration you reviewed. Reload the page.")
        try:
            review_change(st.settings, name, version, decision, u.name, reason, expected=configuration, via="service")
        except SafetyCaseError as exc:
            raise QueryError(409, str(exc)) from exc
        done = f"change {decision}"
        return RedirectResponse(f"{PREFIX}/equity?{urlencode({'model': name, 'version': version, 'done': done})}",
                                status_code=303)

    # ---- models ------------------------------------------------------------------------------------
    @app.get("/models")
    def models(request: Request):
        st, u = signed_in(request, "models")
        from serving.governance import persistence
        from serving.governance.monitoring import latest

        return render(request, "models.html", user=u, title="Models", versions=views.model_versions(st),
                      deployed={n: c.version for n, c in st.bundle.champions.items()}, monitoring=latest(st.settings),
                      persistence=persistence.latest(st.settings))

    @app.get("/models/{name}/{version}/calibration.png")
    def calibration_png(request: Request, name: ModelName,
                        version: Annotated[int, PathParam(ge=1, le=1_000_000)]):
        st, u = signed_in(request, "models")
        return Response(views.artifact(st, name, version, "plots/calibration.png"), media_type="image/png",
                        headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/models/{name}/{version}/card")
    def model_card(request: Request, name: ModelName,
                   version: Annotated[int, PathParam(ge=1, le=1_000_000)]):
        st, u = signed_in(request, "models")
        return HTMLResponse(_no_favicon(views.artifact(st, name, version, "model_card/model_card.html").decode()))

    reidentify_page.add_routes(app, render, signed_in, check_form)
    return app


def _no_favicon(html: str) -> str:
    """A stand-alone document (report, model card) served as a page: no request for /favicon.ico."""
    return html.replace("<head>", '<head><link rel="icon" href="data:,">', 1)


def _secure(request: Request) -> bool:
    """Whether the browser used https: directly, or through a trusted proxy (`service.trusted_proxies`, applied by
    the server's proxy-headers handling before the request reaches us) that says so."""
    return request.url.scheme == "https"


def _safe_next(target: str) -> str:
    """Only our own pages as a place to return to after signing in."""
    return target if target.startswith(PREFIX + "/") and "//" not in target and "\\" not in target else ""
