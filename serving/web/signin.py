"""Signing in and out of the pages, and the checks every page makes: the service state, the session of the
request's cookie (held server-side by `serving.sessions`), the page's roles, and the form token."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from phm.operational.database import DatabaseError
from serving import sessions
from serving.access import record
from serving.sessions import Session
from serving.state import ServiceState, UsersUnavailable
from serving.users import Role, User, authenticate
from serving.web.templating import HOME, PAGES, PREFIX, ROLE_WORDS, render

log = logging.getLogger("phm.serving.pages")


class SignInNeeded(Exception):
    """No valid session: send the browser to the sign-in page (`unsent`: a form was sent, and not acted on)."""

    def __init__(self, next_path: str, unsent: bool = False) -> None:
        self.next_path, self.unsent = next_path, unsent


UNSENT = (
    "You had been signed out (the session ended), so the form you sent was not saved. Sign in, then fill it in and "
    "send it again."
)


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
        raise HTTPException(
            503,
            "Signing in is unavailable just now: the service cannot read its list of users. Tell your administrator.",
        ) from exc
    except DatabaseError as exc:
        log.error("%s", exc)
        raise HTTPException(
            503, "Signing in is unavailable just now: the session store cannot be reached. Tell your administrator."
        ) from exc
    if found is not None:
        request.state.phm_session = found
        record(request, user=found.user)
    return found


def signed_in(request: Request, page: str | None = None) -> tuple[ServiceState, User]:
    st = state(request)
    found = session_of(request, st)
    if found is None:
        if request.method not in ("GET", "HEAD"):  # back to the form's page: a form's address answers only a POST
            raise SignInNeeded(f"{PREFIX}/{page or ''}", unsent=True)
        raise SignInNeeded(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    u = found.user
    if page is not None and u.role not in PAGES[page][1]:
        raise HTTPException(403, f"The {PAGES[page][0]} page is not available to a {ROLE_WORDS[u.role]}.")
    return st, u


def check_form(request: Request, form) -> None:
    if not sessions.csrf_ok(getattr(request.state, "phm_session", None), form.get("csrf")):
        raise HTTPException(403, "This form has expired. Go back, reload the page and try again.")


def signin_key(action):
    """`action()` with the sign-in key; 503 (said in the service log) while the key cannot be made or read."""
    try:
        return action()
    except sessions.SessionKeyError as exc:
        log.error("%s", exc)
        raise HTTPException(
            503, "Signing in is unavailable just now: the sign-in key cannot be used. Tell your administrator."
        ) from exc


def signin_page(request: Request, target: str, status: int = 200, error: str | None = None) -> HTMLResponse:
    """The sign-in form with a fresh login-CSRF token bound to a short-lived cookie."""
    nonce = sessions.signin_nonce()
    form_token = signin_key(lambda: sessions.signin_token(home(request), nonce))
    service = state(request).settings.service
    response = render(
        request,
        "signin.html",
        status=status,
        title="Sign in",
        next=target,
        error=error,
        signin_csrf=form_token,
        hours=service.session_hours,
        idle=service.idle_minutes,
    )
    response.set_cookie(
        sessions.SIGNIN_COOKIE,
        nonce,
        max_age=sessions.SIGNIN_LIFETIME,
        httponly=True,
        samesite="strict",
        secure=secure(request),
        path=PREFIX,
    )
    return response


def register(app: FastAPI) -> None:
    """Add the routes that sign in and out (and the root, which sends a signed-in user to their home page)."""

    @app.get("/", include_in_schema=False)
    def index(request: Request):
        st, u = signed_in(request)
        return RedirectResponse(f"{PREFIX}/{HOME[u.role]}", status_code=303)

    @app.get("/signin")
    def signin_form(request: Request, next: Annotated[str, Query(max_length=500)] = "", unsent: bool = False):
        return signin_page(request, safe_next(next), error=UNSENT if unsent else None)

    @app.post("/signin")
    async def signin(request: Request):
        form = await request.form()
        st = state(request)
        target = safe_next(str(form.get("next", "")))
        nonce = request.cookies.get(sessions.SIGNIN_COOKIE)
        if not signin_key(lambda: sessions.signin_ok(st.settings.home, nonce, form.get("csrf"))):
            return signin_page(
                request,
                target,
                status=403,
                error="This sign-in form has expired or did not come from this service. Enter your access token again.",
            )
        token = str(form.get("token", "")).strip()
        try:
            u = authenticate(st.users.by_digest, token) if token else None
        except UsersUnavailable as exc:
            raise HTTPException(
                503,
                "Signing in is unavailable just now: the service cannot read its list of users. "
                "Tell your administrator.",
            ) from exc
        if u is None:
            return signin_page(
                request,
                target,
                status=401,
                error="That access token was not recognised. Check it and "
                "try again, or ask your administrator for a new one.",
            )
        record(request, user=u)  # the access log names who signed in, or whose token was refused
        if u.role == Role.data_feed:  # a feed's token posts events and never signs in to pages
            return signin_page(
                request, target, status=403, error="This token belongs to a data feed; it cannot sign in."
            )
        page = target.removeprefix(PREFIX + "/").split("?")[0].split("/")[0]
        if not target or page not in PAGES or u.role not in PAGES[page][1]:
            target = f"{PREFIX}/{HOME[u.role]}"
        try:
            st.ensure_schema()
            cookie = st.sessions.issue(u)
        except DatabaseError as exc:
            log.error("%s", exc)
            raise HTTPException(
                503, "Signing in is unavailable just now: the session store cannot be reached. Tell your administrator."
            ) from exc
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            sessions.COOKIE,
            cookie,
            max_age=int(st.sessions.lifetime.total_seconds()),
            httponly=True,
            samesite="strict",
            secure=secure(request),
            path=PREFIX,
        )
        response.delete_cookie(sessions.SIGNIN_COOKIE, path=PREFIX)
        return response

    @app.post("/signout")
    async def signout(request: Request):
        st = state(request)
        if session_of(request, st) is not None:  # a session that has already ended needs no form token to leave
            check_form(request, await request.form())
        st.sessions.end(request.cookies.get(sessions.COOKIE), "signed out")
        response = RedirectResponse(f"{PREFIX}/signin", status_code=303)
        response.delete_cookie(sessions.COOKIE, path=PREFIX)
        return response


def secure(request: Request) -> bool:
    """Whether the browser used https: directly, or through a trusted proxy (`service.trusted_proxies`, applied by
    the server's proxy-headers handling before the request reaches us) that says so."""
    return request.url.scheme == "https"


def safe_next(target: str) -> str:
    """Only our own pages as a place to return to after signing in."""
    return target if target.startswith(PREFIX + "/") and "//" not in target and "\\" not in target else ""
