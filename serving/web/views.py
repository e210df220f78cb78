"""What each page shows, as plain data for the templates: worklist rows with trend words, capacity
charts with exceedance and scenario, model versions, and a bias report with flagged groups first."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pandas as pd

from evaluation.fairness.narrative import METRIC_NAMES, SHORT
from evaluation.fairness.results import AuditResult, Comparison
from models import specs
from features.sources.codes import CONDITION_KEYS
from phm.core import ledger_file
from serving import queries
from serving.queries import QueryError
from serving.schemas import Worklist
from serving.batch.ranking import BAND_ORDER
from serving.state import ServiceState
from serving.web.charts import Series, forecast_svg

METRICS = [
    ("emergency_admissions", "Emergency admissions a day", "admissions"),
    ("ga_beds_occupied", "General and acute beds occupied at midnight", "beds"),
    ("critical_care_beds_occupied", "Critical care beds occupied at midnight", "beds"),
]
SEGMENTS = {
    "healthy": "Mostly healthy",
    "long_term_conditions": "Long-term conditions",
    "complex_multimorbidity": "Complex multimorbidity",
    "organ_failure": "Organ failure",
    "frailty_dementia": "Frailty or dementia",
    "end_of_life": "End of life",
}
SEGMENT_ORDER = list(SEGMENTS)


# ---- worklist ----------------------------------------------------------------------------------------
def trend_words(risk: float, previous: float | None) -> tuple[str, str]:
    """('up'|'down'|'same'|'new', plain words) for the change in risk since the earlier snapshot."""
    if previous is None:
        return "new", "not scored before"
    change = 100 * (risk - previous)
    if abs(change) < 0.5:
        return "same", "about the same"
    return ("up", f"up {change:.1f} points") if change > 0 else ("down", f"down {-change:.1f} points")


def worklist_view(result: Worklist, mine: pd.DataFrame, meta: dict) -> dict:
    rows = []
    for r in result.rows:
        direction, words = trend_words(r.risk, r.previous_risk)
        rows.append({"row": r, "trend": direction, "trend_words": words})
    counts = mine.band.value_counts()
    bands = [{"band": b, "people": int(counts.get(b, 0))} for b in sorted(BAND_ORDER, key=BAND_ORDER.get, reverse=True)]
    return {
        "rows": rows,
        "bands": bands,
        "registered": len(mine),
        "previous": meta.get("previous"),
        "band_words": band_words(meta.get("bands") or {}),
        "beside": [
            {"column": s.daily.column, "title": s.daily.title}
            for s in specs.columns()
            if any(r.beside.get(s.daily.column) is not None for r in result.rows)
        ],
    }


def band_words(bands: dict[str, float]) -> str:
    """The snapshot's band cut-offs (top shares of the ICS) in words, narrowest band first."""
    parts, above = [], 0.0
    for name, share in sorted(bands.items(), key=lambda kv: kv[1]):
        width = f"{round(100 * (share - above), 4):g}%"
        parts.append(f"{name} is the top {width} of the ICS" if not parts else f"{name} the next {width}")
        above = share
    return f"Bands: {', '.join(parts)}." if parts else ""


def worklist_options(mine: pd.DataFrame, practices: list[str], pcns: dict[str, str]) -> dict:
    segments = sorted(set(mine.segment), key=lambda s: (SEGMENT_ORDER.index(s) if s in SEGMENT_ORDER else 99, s))
    present = {c for cs in mine.conditions for c in cs.split(",") if c}
    return {
        "practices": [{"code": p, "pcn": pcns.get(p, "")} for p in practices],
        "segments": segments,
        "conditions": [c for c in CONDITION_KEYS if c in present],
        "bands": ["raised", "high", "very high", "routine"],
        "sorts": [(s.daily.column, s.daily.rank_title or f"highest {s.daily.title} first") for s in specs.columns()],
    }


# ---- capacity ----------------------------------------------------------------------------------------
@dataclass
class CapacityChart:
    metric: str
    title: str
    unit: str
    svg: str
    model: str
    capacity: float | None
    threshold: float | None
    peak_exceed: float | None
    peak_exceed_date: str | None
    weeks: list[dict] = field(default_factory=list)
    scenario: dict | None = None


def capacity_chart(
    st: ServiceState, site: str, metric: str, horizon: int, scenario: dict | None, index: int
) -> CapacityChart:
    """One metric's chart with history (the last 90 days), forecast, intervals, capacity and scenario."""
    title, unit = next((t, u) for m, t, u in METRICS if m == metric)
    fc = queries.forecast(st, site, metric, horizon, history_days=90)
    rows = fc["forecast"]
    cap = rows[0].get("capacity")
    threshold = rows[0].get("threshold")
    series = Series(
        title=f"{title}, {site}",
        unit=unit,
        history_dates=[h["date"] for h in fc["history"]],
        history=[h["value"] for h in fc["history"]],
        dates=[r["date"] for r in rows],
        mean=[r["mean"] for r in rows],
        q025=[r["q025"] for r in rows],
        q10=[r["q10"] for r in rows],
        q90=[r["q90"] for r in rows],
        q975=[r["q975"] for r in rows],
        capacity=cap,
        threshold=threshold,
    )
    found = None
    if scenario is not None:
        from training.scenarios import Scenario, ScenarioError, run_scenario

        try:
            found = run_scenario(
                st.settings.home / "forecasts" / "latest",
                Scenario(site=site, metric=metric, horizon=horizon, **scenario),
                st.policy,
            )
        except ScenarioError as exc:
            raise QueryError(409 if str(exc).startswith("no ") else 422, str(exc)) from exc
        series.scenario_mean = [d["scenario_mean"] for d in found.daily]
        series.scenario_q10 = [d["scenario_q10"] for d in found.daily]
        series.scenario_q90 = [d["scenario_q90"] for d in found.daily]
    p = [r.get("p_exceed") for r in rows]
    peak = max((x for x in p if x is not None), default=None)
    peak_date = rows[p.index(peak)]["date"] if peak is not None else None
    weeks = []
    for start in range(0, len(rows), 7):
        week = rows[start : start + 7]
        sc = series.scenario_mean[start : start + 7] if series.scenario_mean else None
        weeks.append(
            {
                "from": week[0]["date"],
                "to": week[-1]["date"],
                "mean": sum(r["mean"] for r in week) / len(week),
                "q10": min(r["q10"] for r in week),
                "q90": max(r["q90"] for r in week),
                "q025": min(r["q025"] for r in week),
                "q975": max(r["q975"] for r in week),
                "p_exceed": max((r["p_exceed"] for r in week if r.get("p_exceed") is not None), default=None),
                "scenario_mean": sum(sc) / len(sc) if sc else None,
            }
        )
    summary = None
    if found is not None:
        key = next(k for k in found.summary if k.endswith("saved_over_horizon"))
        summary = {
            "people": found.people_reached,
            "prevented_per_day": found.prevented_admissions_per_day,
            "saved": found.summary[key],
            "saved_words": "bed days saved" if "bed_days" in key else "admissions prevented",
            "notes": found.notes,
        }
    return CapacityChart(
        metric=metric,
        title=title,
        unit=unit,
        svg=forecast_svg(series, f"chart{index}"),
        model=fc["model"],
        capacity=cap,
        threshold=threshold,
        peak_exceed=peak,
        peak_exceed_date=peak_date,
        weeks=weeks,
        scenario=summary,
    )


# ---- models and equity -----------------------------------------------------------------------------------
def model_versions(st: ServiceState) -> list:
    from training import registry, tracking

    tracking.configure(st.settings)
    return registry.versions()


def pick_version(versions: list, model: str | None, version: int | None):
    """The version asked for; else the first audited version awaiting a decision; else a champion."""
    if model is not None or version is not None:
        found = next(
            (
                v
                for v in versions
                if v.name == (model or specs.worklist().name) and (version is None or v.version == version)
            ),
            None,
        )
        if found is None:
            raise QueryError(404, f"There is no version {version} of {model or specs.worklist().name}.")
        return found
    audited = [v for v in versions if v.tags.get("audit_report_sha256")]
    waiting = [v for v in audited if v.tags.get("decision_report_sha256") != v.tags.get("audit_report_sha256")]
    champions = [v for v in audited if "champion" in v.aliases]
    return (waiting or champions or audited or [None])[0]


def equity_view(st: ServiceState, chosen) -> dict | None:
    """The bias report of `chosen` with flagged groups first, then uncertain ones, and its decisions."""
    if not chosen.tags.get("audit_report_sha256"):
        return None
    result = AuditResult.model_validate(queries.bias_report(st, chosen.name, chosen.version))
    titles = {g.name: g.title for g in result.groupings}

    def row(c: Comparison) -> dict:
        return {
            "grouping": titles.get(c.grouping, c.grouping),
            "group": c.group,
            "metric": SHORT.get(c.metric, c.metric),
            "metric_long": METRIC_NAMES.get(c.metric, c.metric),
            "value": c.value,
            "reference": c.reference_group,
            "reference_value": c.reference_value,
            "ratio": c.ratio,
            "ci": c.ratio_ci,
            "adjusted": c.adjusted_ratio,
            "status": c.status,
        }

    others = [
        c
        for g in result.groupings
        for c in g.comparisons
        if c.status in ("within tolerance", "explained by age and sex") and c.metric in g.judged
    ]
    log = ledger_file.read(st.settings.home / "safety" / "hazard_log.jsonl")
    history = [
        e
        for e in log
        if e.get("model") == chosen.name
        and e.get("version") == chosen.version
        and e.get("kind") in ("audit", "decision", "change_review", "promotion")
    ]
    return {
        "result": result,
        "flags": [row(c) for c in result.flags],
        "uncertain": [row(c) for c in result.uncertain],
        "within": [row(c) for c in others],
        "history": history[::-1],
        "decided": chosen.tags.get("decision_report_sha256") == result.report_sha256,
        "hazards": result.hazards,
        "pack": cso_pack(st, chosen),
    }


def cso_pack(st: ServiceState, chosen) -> dict | None:
    """The CSO pack of `chosen` (deployment record, TRIPOD+AI checklist, publishable bias report), generated from
    what was recorded, as `phm audit pack` writes it."""
    from mlflow.exceptions import MlflowException

    from serving.governance.cso_pack import build
    from serving.governance.safety_case import SafetyCaseError

    try:
        return build(st.settings, chosen.name, chosen.version)
    except (SafetyCaseError, MlflowException, OSError):
        return None


def safety_case(st: ServiceState, chosen) -> dict | None:
    """The safety case of `chosen` for the Equity page: the decision, the configuration approved and in force, and
    every difference (None when it has not been audited)."""
    from serving.governance.safety_case import SafetyCaseError, case
    from training import tracking

    if not chosen.tags.get("audit_report_sha256"):
        return None
    tracking.configure(st.settings)
    try:
        c = case(st.settings, chosen.name, chosen.version, tags=chosen.tags)
    except (SafetyCaseError, ValueError) as exc:
        return {"ok": False, "reason": str(exc), "differences": [], "reviewable": False}
    return {
        **c.summary(),
        "reviewable": c.approval is not None
        and c.rejection is None
        and not c.record_problem
        and bool(c.differences)
        and c.current.fingerprint() not in c.rejected_changes,
    }


def artifact(st: ServiceState, name: str, version: int, path: str) -> bytes:
    """A file logged with a version's training run (calibration plot, model card)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from training import tracking

    uri = tracking.configure(st.settings)
    try:
        run_id = MlflowClient().get_model_version(name, str(version)).run_id
    except MlflowException as exc:
        raise QueryError(404, f"There is no version {version} of {name}.") from exc
    try:
        return _download(uri, run_id, path)
    except (MlflowException, OSError) as exc:
        raise QueryError(404, f"{name} version {version} has no {Path(path).name}.") from exc


@lru_cache(maxsize=64)
def _download(_store: str, run_id: str, path: str) -> bytes:
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=tmp)).read_bytes()
