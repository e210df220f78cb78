"""What every page shares: the pages and who may open them, role words, security headers, and the Jinja
environment with its filters (autoescaped; templates in `serving/web/templates`)."""

from __future__ import annotations

import re
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from features.sources.codes import CONDITIONS
from serving.users import Role
from serving.web import views

HERE = Path(__file__).parent
PREFIX = "/ui"
PAGES = {"worklist": ("Worklist", {Role.coordinator}),
         "capacity": ("Capacity", {Role.planner, Role.safety_officer, Role.data_scientist}),
         "equity": ("Equity", {Role.safety_officer, Role.data_scientist}),
         "models": ("Models", set(Role))}
HOME = {Role.coordinator: "worklist", Role.planner: "capacity", Role.safety_officer: "equity",
        Role.data_scientist: "models"}
ROLE_WORDS = {Role.coordinator: "care coordinator", Role.planner: "planner", Role.safety_officer: "clinical safety officer",
              Role.data_scientist: "data scientist"}
CONDITION_LABELS = {c.key: c.label for c in CONDITIONS}
SECURITY_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                    "script-src 'none'; frame-ancestors 'none'; form-action 'self'",
                    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}

env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                  trim_blocks=True, lstrip_blocks=True)
env.filters["pct"] = lambda x, d=1: "–" if x is None else f"{100 * x:.{d}f}%"
env.filters["num"] = lambda x, d=0: "–" if x is None else f"{x:,.{d}f}"
env.filters["bold"] = lambda t: Markup(re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", str(escape(t))))
env.filters["segment"] = lambda k: views.SEGMENTS.get(k, k.replace("_", " "))
env.filters["condition"] = lambda k: CONDITION_LABELS.get(k, k.replace("_", " "))
