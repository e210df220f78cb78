"""What every page shares: the pages and who may open them, role words, security headers, the Jinja environment
with its filters (autoescaped; templates in `serving/web/templates`), and `render`, which fills a template with
the signed-in user's navigation and form token."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from features.sources.codes import CONDITIONS
from serving.sessions import Session
from serving.users import Role, User
from serving.web import views

HERE = Path(__file__).parent
PREFIX = "/ui"
PAGES = {
    "worklist": ("Worklist", {Role.coordinator}),
    "capacity": ("Capacity", {Role.planner, Role.safety_officer, Role.data_scientist}),
    "equity": ("Equity", {Role.safety_officer, Role.data_scientist}),
    "models": ("Models", set(Role)),
}
HOME = {
    Role.coordinator: "worklist",
    Role.planner: "capacity",
    Role.safety_officer: "equity",
    Role.data_scientist: "models",
}
ROLE_WORDS = {
    Role.coordinator: "care coordinator",
    Role.planner: "planner",
    Role.safety_officer: "clinical safety officer",
    Role.data_scientist: "data scientist",
}
CONDITION_LABELS = {c.key: c.label for c in CONDITIONS}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters["pct"] = lambda x, d=1: "–" if x is None else f"{100 * x:.{d}f}%"
env.filters["num"] = lambda x, d=0: "–" if x is None else f"{x:,.{d}f}"
env.filters["bold"] = lambda t: Markup(re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", str(escape(t))))
env.filters["segment"] = lambda k: views.SEGMENTS.get(k, k.replace("_", " "))
env.filters["condition"] = lambda k: CONDITION_LABELS.get(k, k.replace("_", " "))


def render(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
    u: User | None = context.pop("user", None)
    found: Session | None = getattr(request.state, "phm_session", None)
    nav = [{"key": k, "title": t, "href": f"{PREFIX}/{k}"} for k, (t, roles) in PAGES.items() if u and u.role in roles]
    html = env.get_template(template).render(
        prefix=PREFIX,
        user=u,
        role_words=ROLE_WORDS.get(u.role) if u else None,
        nav=nav,
        csrf=found.csrf if u and found else "",
        **context,
    )
    return HTMLResponse(html, status_code=status)


def no_favicon(html: str) -> str:
    """A stand-alone document (report, model card) served as a page: no request for /favicon.ico."""
    return html.replace("<head>", '<head><link rel="icon" href="data:,">', 1)
