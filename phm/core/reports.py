"""Self-contained HTML reports (data quality, model card, bias report) rendered from Jinja templates in
`phm/core/templates`, with the same escaping rules as the service's pages: every value is escaped unless a
template marks it safe, and an undefined name is an error rather than a blank."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES = Path(__file__).with_name("templates")


def cell(value: Any) -> str:
    """A table cell's text: floats to 4 significant figures, intervals to 3 decimals, lists/dicts as JSON."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)) and value and all(isinstance(x, float) for x in value):
        return "(" + ", ".join(f"{x:.3f}" for x in value) + ")"
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return "" if value is None else str(value)


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["cell"] = cell
    env.filters["json"] = lambda v: json.dumps(v, default=str)
    return env


def render(template: str, **context: Any) -> str:
    """The named template (e.g. "model_card.html.j2") rendered with `context`."""
    return environment().get_template(template).render(**context)
