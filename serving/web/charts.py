"""Server-side SVG charts for the Capacity page: history, forecast with 80%/95% intervals, the capacity
and alert lines, and an optional scenario. Plain SVG with a title and description for screen readers;
the page also gives the numbers as a table."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from html import escape

WIDTH, HEIGHT = 760, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 36
COLOURS = {
    "history": "#212b32",
    "forecast": "#005eb8",
    "band80": "#7aa7d9",
    "band95": "#c8dcf0",
    "capacity": "#d5281b",
    "threshold": "#ed8b00",
    "scenario": "#007f3b",
    "scenario_band": "#a7d8b9",
    "grid": "#d8dde0",
    "today": "#768692",
}


@dataclass
class Series:
    """What one chart shows: dates as ISO strings, values aligned with them."""

    title: str
    unit: str
    history_dates: list[str]
    history: list[float]
    dates: list[str]
    mean: list[float]
    q025: list[float]
    q10: list[float]
    q90: list[float]
    q975: list[float]
    capacity: float | None = None
    threshold: float | None = None
    scenario_mean: list[float] | None = None
    scenario_q10: list[float] | None = None
    scenario_q90: list[float] | None = None


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    span = max(hi - lo, 1e-9)
    raw = span / n
    step = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * step:
            step *= m
            break
    start = math.floor(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 2) if start + i * step <= hi + 1e-9]


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 10 or v == int(v) else f"{v:.1f}"


def forecast_svg(s: Series, chart_id: str) -> str:
    """An accessible SVG chart of `s`."""
    days = [date.fromisoformat(d) for d in s.history_dates + s.dates]
    if not days:
        return ""
    d0, d1 = min(days), max(days)
    span_days = max((d1 - d0).days, 1)
    values = [*s.history, *s.q975, *s.q025, *(s.scenario_q10 or []), *(s.scenario_q90 or [])]
    values += [v for v in (s.capacity, s.threshold) if v is not None]
    lo, hi = min(0.0, min(values)), max(values) * 1.05 or 1.0
    ticks = _ticks(lo, hi)
    hi = max(hi, ticks[-1])
    w, h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(d: str) -> float:
        return LEFT + w * (date.fromisoformat(d) - d0).days / span_days

    def y(v: float) -> float:
        return TOP + h * (1 - (v - lo) / (hi - lo))

    def line(ds: list[str], vs: list[float], colour: str, width: float = 2, dash: str = "") -> str:
        pts = " ".join(f"{x(d):.1f},{y(v):.1f}" for d, v in zip(ds, vs))
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        return f'<polyline fill="none" stroke="{colour}" stroke-width="{width}"{extra} points="{pts}"/>'

    def band(ds: list[str], low: list[float], high: list[float], colour: str, opacity: float = 1) -> str:
        pts = [f"{x(d):.1f},{y(v):.1f}" for d, v in zip(ds, high)]
        pts += [f"{x(d):.1f},{y(v):.1f}" for d, v in zip(reversed(ds), list(reversed(low)))]
        return f'<polygon fill="{colour}" fill-opacity="{opacity}" stroke="none" points="{" ".join(pts)}"/>'

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{chart_id}-t {chart_id}-d" class="chart">',
        f'<title id="{chart_id}-t">{escape(s.title)}</title>',
        f'<desc id="{chart_id}-d">{escape(_describe(s))}</desc>',
    ]
    for t in ticks:
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="{COLOURS["grid"]}"/>'
        )
        parts.append(f'<text x="{LEFT - 6}" y="{y(t) + 4:.1f}" text-anchor="end" font-size="12">{_fmt(t)}</text>')
    months = sorted({d.replace(day=1) for d in days if d.replace(day=1) >= d0})
    for m in months[:: max(1, len(months) // 8)]:
        xm = LEFT + w * (m - d0).days / span_days
        parts.append(f'<line x1="{xm:.1f}" x2="{xm:.1f}" y1="{TOP + h}" y2="{TOP + h + 5}" stroke="#425563"/>')
        parts.append(f'<text x="{xm:.1f}" y="{TOP + h + 20}" text-anchor="middle" font-size="12">{m:%b %Y}</text>')
    if s.dates:
        parts.append(band(s.dates, s.q025, s.q975, COLOURS["band95"]))
        parts.append(band(s.dates, s.q10, s.q90, COLOURS["band80"]))
    if s.scenario_mean and s.scenario_q10 and s.scenario_q90:
        parts.append(band(s.dates, s.scenario_q10, s.scenario_q90, COLOURS["scenario_band"], 0.7))
    if s.history:
        parts.append(line(s.history_dates, s.history, COLOURS["history"], 1.5))
    if s.dates:
        parts.append(line(s.dates, s.mean, COLOURS["forecast"], 2.5))
        xt = x(s.dates[0])
        parts.append(
            f'<line x1="{xt:.1f}" x2="{xt:.1f}" y1="{TOP}" y2="{TOP + h}" stroke="{COLOURS["today"]}" '
            'stroke-dasharray="2 3"/>'
        )
    if s.scenario_mean:
        parts.append(line(s.dates, s.scenario_mean, COLOURS["scenario"], 2.5, "6 3"))
    for value, key, label, dy in ((s.capacity, "capacity", "beds", -5), (s.threshold, "threshold", "alert level", 15)):
        if value is not None:
            parts.append(
                f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
                f'stroke="{COLOURS[key]}" stroke-width="2" stroke-dasharray="8 4"/>'
            )
            parts.append(
                f'<text x="{LEFT + 6}" y="{y(value) + dy:.1f}" font-size="12" font-weight="bold" '
                f'fill="{COLOURS[key]}">{label} {_fmt(value)}</text>'
            )
    parts.append(f'<rect x="{LEFT}" y="{TOP}" width="{w}" height="{h}" fill="none" stroke="#425563"/>')
    parts.append("</svg>")
    return "".join(parts)


def _describe(s: Series) -> str:
    if not s.dates:
        return "No forecast."
    text = (
        f"History to {s.history_dates[-1] if s.history_dates else 'n/a'}, then a forecast from {s.dates[0]} to "
        f"{s.dates[-1]}: expected {_fmt(s.mean[0])} {s.unit} on the first day and {_fmt(s.mean[-1])} on the last "
        f"(95% interval {_fmt(s.q025[-1])} to {_fmt(s.q975[-1])})."
    )
    if s.capacity is not None:
        text += f" Capacity {_fmt(s.capacity)}."
    if s.scenario_mean:
        text += f" With the scenario, {_fmt(s.scenario_mean[-1])} on the last day."
    return text
