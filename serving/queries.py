"""What the API and the web pages both answer: worklists, cohort summaries and forecasts, with the same
scope rules and disclosure control (`evaluation.disclosure`; the access log is written by `serving.access`).
Errors are `QueryError(status, message)`."""

from __future__ import annotations

import io
import json
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evaluation.disclosure import Release, Shown
from phm.operational import outcomes
from phm.operational.database import DatabaseError
from models.explain import reasons_from_values
from models import specs
from serving.schemas import (
    BESIDE,
    MAX_ON_DEMAND_REASONS,
    Reason,
    Summary,
    SummaryRow,
    Worklist,
    WorklistQuery,
    WorklistRow,
)
from serving.batch.ranking import BAND_ORDER
from serving.holdout_view import HoldoutUnknown
from serving.batch.store import worklist_version
from serving.state import ServiceState
from serving.users import User

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would run a cell starting with one of these


class QueryError(Exception):
    """A request the service refuses: an HTTP status (4xx) and a message for the person who asked."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def snapshot(st: ServiceState) -> tuple[dict, pd.DataFrame]:
    b = st.bundle
    if b.snapshot_refusal:
        raise QueryError(409, b.snapshot_refusal[0].upper() + b.snapshot_refusal[1:])
    if b.meta is None or b.scores is None:
        raise QueryError(
            409, "no daily scores yet: run `phm score daily` (the service serves them as soon as they are published)"
        )
    return b.meta, b.scores


def practices_asked(st: ServiceState, practice: list[str] | None, pcn: str | None) -> list[str] | None:
    """The practices a request names (codes, a PCN, or both: their overlap); None if it names none."""
    if not practice and not pcn:
        return None
    known = st.bundle.practices
    wanted = sorted({p.strip().upper() for p in practice}) if practice else sorted(known)
    unknown = [p for p in wanted if p not in known]
    if unknown:
        raise QueryError(404, f"unknown practice code(s) {unknown}")
    if pcn:
        if pcn not in set(known.values()):
            raise QueryError(404, f"unknown PCN {pcn!r}")
        wanted = [p for p in wanted if known[p] == pcn]
    return wanted


def parse_reasons(raw: Any) -> list[Reason]:
    if raw is None or (isinstance(raw, float) and np.isnan(raw)):
        return []
    return [Reason(**r) for r in json.loads(raw)]


def explain(st: ServiceState, ids: list[int]) -> dict[int, list[Reason]]:
    """Reasons computed now for people outside the worklist bands (their snapshot rows carry none)."""
    champ = st.bundle.champions.get(specs.worklist().name)
    if champ is None or not ids:
        return {}
    found, values = st.features_for(ids)
    if not found:
        return {}
    out = reasons_from_values(champ.model, values)
    return {p: [Reason(**r) for r in rs] for p, rs in zip(found, out)}


def worklist(st: ServiceState, u: User, q: WorklistQuery, now: datetime | None = None) -> Worklist:
    """Today's highest-risk people in the coordinator's practices, filtered and sorted, without people hidden by a
    recorded outcome (as of `now`); each row says since when the person has been in a band and which caseloads
    hold them (the caller records the people returned for the access log)."""
    meta, scores = snapshot(st)
    asked = practices_asked(st, q.practice, q.pcn)
    wanted = list(u.practices) if asked is None else asked
    outside = sorted(set(wanted) - set(u.practices))
    if outside:
        raise QueryError(403, f"practice(s) {outside} are outside your scope")
    rows = scores[scores.practice_code.isin(wanted)]
    rows = rows[rows.band.map(BAND_ORDER) >= BAND_ORDER[q.min_band.value]]
    try:  # people held out for the programme's evaluation are not on the worklist at any band (nor their scores)
        held = st.held_out.ids()
    except HoldoutUnknown as exc:
        raise QueryError(503, str(exc)) from None
    if held:
        rows = rows[~rows.person_id.isin(list(held))]
    if q.age_band:
        rows = rows[rows.age_band == q.age_band]
    if q.segment:
        rows = rows[rows.segment == q.segment]
    if q.condition:
        rows = rows[rows.conditions.str.split(",").apply(lambda cs: q.condition in cs)]
    since = st.bundle.in_band_since
    day = np.datetime64(meta["date"], "D")
    if q.new_within_days is not None:
        entered = rows.person_id.map(since) if since is not None else pd.Series(pd.NaT, index=rows.index)
        rows = rows[entered.notna() & (entered > day - np.timedelta64(q.new_within_days, "D"))]
    try:
        hide = {r.person_id for r in outcomes.in_force(st.settings, practices=wanted, now=now) if r.hidden}
    except DatabaseError as exc:
        raise QueryError(
            503,
            "the outcome store cannot be reached, so the worklist cannot leave out people already "
            "dealt with; try again shortly",
        ) from exc
    shown = ~rows.person_id.isin(hide)
    hidden_count = int((~shown).sum())
    rows = rows[shown]
    total = len(rows)
    if q.sort == "risk":
        rows = rows.sort_values("risk", ascending=False)
    elif q.sort in BESIDE:  # a risk shown beside the worklist's, highest first (people it did not score last)
        rows = rows.sort_values([q.sort, "risk"], ascending=False, na_position="last")
    elif q.sort == "change":  # biggest rise first; without earlier scores, highest risk first
        rise = rows.risk - rows.previous_risk.fillna(rows.risk) if "previous_risk" in rows else rows.risk * 0
        rows = rows.assign(_d=rise).sort_values(["_d", "risk"], ascending=False)
    else:
        rows = rows.sort_values(["practice_code" if q.sort == "practice" else q.sort, "risk"], ascending=[True, False])
    rows = rows.head(q.top)
    try:
        teams = outcomes.teams_of(st.settings, rows.person_id.tolist())
    except DatabaseError as exc:
        raise QueryError(503, "the caseload store cannot be reached; try again shortly") from exc
    need = [int(p) for p, r in zip(rows.person_id, rows.reasons) if r is None or r != r]
    extra = explain(st, need[:MAX_ON_DEMAND_REASONS]) if need else {}
    out = [
        WorklistRow(
            person_id=str(int(r.person_id)),
            practice_code=r.practice_code,
            pcn_code=r.pcn_code,
            age_band=r.age_band,
            sex=r.sex,
            segment=r.segment,
            conditions=[c for c in r.conditions.split(",") if c],
            risk=float(r.risk),
            rank=int(r.rank),
            band=r.band,
            previous_risk=_num(getattr(r, "previous_risk", None)),
            beside={c: _num(getattr(r, c, None)) for c in BESIDE},
            event_flag=_flag(getattr(r, "event_flag", None)),
            reasons=parse_reasons(r.reasons) or extra.get(int(r.person_id), []),
            caseload=teams.get(int(r.person_id), []),
            **_run(since, int(r.person_id), day),
        )
        for r in rows.itertuples()
    ]
    return Worklist(
        snapshot_date=meta["date"],
        index_date=meta.get("index_date", meta["date"]),
        events_to=(meta.get("delta") or {}).get("last_event_received"),
        model_version=worklist_version(meta),
        practices=wanted,
        total_matching=total,
        rows=out,
        hidden=hidden_count,
        history_from=st.bundle.history_from,
        reasons_omitted=max(0, len(need) - MAX_ON_DEMAND_REASONS),
    )


def _run(since: pd.Series | None, pid: int, day: np.datetime64) -> dict:
    first = since.get(pid) if since is not None else None
    if first is None or pd.isna(first):
        return {}
    first = np.datetime64(first, "D")
    return {"in_band_since": str(first), "days_in_band": int((day - first).astype(int))}


def _flag(value) -> str | None:
    return value if isinstance(value, str) and value else None


def worklist_csv(result: Worklist) -> str:
    """The worklist as CSV: one row a person, conditions and reasons as readable text; a text cell that a
    spreadsheet would run as a formula is prefixed with an apostrophe."""
    fields = [f for f in WorklistRow.model_fields if f != "beside"]
    table = pd.DataFrame(
        [
            {
                **r.model_dump(exclude={"reasons", "conditions", "caseload", "beside"}),
                **r.beside,
                "band": r.band.value,
                "conditions": ";".join(r.conditions),
                "caseload": ";".join(r.caseload),
                "reasons": "; ".join(x.words for x in r.reasons),
            }
            for r in result.rows
        ],
        columns=[*fields[: fields.index("previous_risk") + 1], *BESIDE, *fields[fields.index("previous_risk") + 1 :]],
    )
    for col in table.columns:
        if table[col].dtype == object or pd.api.types.is_string_dtype(table[col]):
            table[col] = table[col].map(safe_cell)
    buf = io.StringIO()
    table.to_csv(buf, index=False)
    return buf.getvalue()


def safe_cell(value: Any) -> Any:
    """A CSV cell that cannot run as a spreadsheet formula (OWASP: prefix an apostrophe)."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


ONE_UNIT = (
    "name one practice or one PCN: aggregates are released for the whole ICS, a PCN or one practice, so "
    "that overlapping requests cannot reveal small numbers"
)


def cohort_summary(
    st: ServiceState, u: User, by: str, practice: list[str] | None = None, pcn: str | None = None
) -> Summary:
    """People and mean risk by group, under the disclosure-control policy, for the ICS, a PCN or one practice
    (coordinators: their own practices, a PCN of theirs, or one of theirs)."""
    meta, _ = snapshot(st)
    release, unit, words = _unit(st, u, practice, pcn)
    rows = release.children(unit, by) if by in ("practice", "pcn") else release.breakdown(unit, by)
    total = release.total(unit)
    return Summary(
        snapshot_date=meta["date"],
        by=by,
        unit=words,
        people=total.count,
        policy=st.policy.describe(),
        rows=[
            SummaryRow(group=str(g), people=c.count, people_display=display(c), mean_risk=c.mean, suppressed=c.hidden)
            for g, c in rows
        ],
    )


def display(cell: Shown) -> str:
    return "*" if cell.hidden else f"{cell.count:,}"


def _unit(st: ServiceState, u: User, practice: list[str] | None, pcn: str | None) -> tuple[Release, tuple, str]:
    """The release and the unit a request names."""
    known = st.bundle.practices
    codes = sorted({p.strip().upper() for p in practice or [] if p.strip()})
    if len(codes) > 1:
        raise QueryError(422, ONE_UNIT)
    if codes and codes[0] not in known:
        raise QueryError(404, f"unknown practice code(s) {codes}")
    if pcn and pcn not in set(known.values()):
        raise QueryError(404, f"unknown PCN {pcn!r}")
    if codes and pcn and known[codes[0]] != pcn:
        raise QueryError(422, f"practice {codes[0]} is not in PCN {pcn}")
    if u.sees_people:
        if codes and codes[0] not in u.practices:
            raise QueryError(403, f"practice(s) {codes} are outside your scope")
        if pcn and not any(known.get(p) == pcn for p in u.practices):
            raise QueryError(403, f"PCN {pcn} is outside your scope")
        release = st.scoped_release(u.practices)
        root = "your practices"
    else:
        release = st.bundle.release
        root = "ICS"
    if release is None:
        raise QueryError(
            409, "no daily scores yet: run `phm score daily` (the service serves them as soon as they are published)"
        )
    scoped = " (your practices in it)" if u.sees_people else ""  # a coordinator's release holds only those
    unit, words = (
        (("practice", codes[0]), f"practice {codes[0]}")
        if codes
        else (("pcn", pcn), f"PCN {pcn}{scoped}")
        if pcn
        else (("root", root), root)
    )
    if not release.has(unit):
        raise QueryError(404, f"no one in {words} is in today's scores")
    return release, unit, words


def forecast(st: ServiceState, site: str, metric: str, horizon: int, history_days: int = 180) -> dict:
    """The forecast for a site and metric with its 80%/95% intervals and capacity, plus recent history."""
    folder = st.settings.home / "forecasts" / "latest"
    if not (folder / "forecasts.parquet").exists():
        raise QueryError(409, "no forecasts yet: run `phm forecast fit`")
    frame = _table(folder / "forecasts.parquet")
    if site not in set(frame.site):
        raise QueryError(404, f"unknown site {site!r}; sites: {sorted(frame.site.unique())}")
    part = frame[(frame.site == site) & (frame.metric == metric)].sort_values("date")
    if part.empty:
        why = next((r.split(": ", 1)[1] for r in _refused(folder) if r.startswith(f"{site}/{metric}: ")), None)
        raise QueryError(404, f"no {metric} forecast for {site}" + (f": refused when fitted ({why})" if why else ""))
    if horizon > len(part):
        raise QueryError(422, f"horizon must be at most {len(part)} days")
    part = part.head(horizon)
    hist = _table(folder / "history.parquet")
    hist = hist[(hist.site == site) & (hist.metric == metric)].sort_values("date").tail(history_days)
    rows = part.drop(columns=["sigma_a", "sigma_b"]).assign(date=part.date.dt.strftime("%Y-%m-%d"))
    return {
        "site": site,
        "metric": metric,
        "model": str(part.model.iloc[0]),
        "forecast": json.loads(rows.to_json(orient="records")),
        "history": [{"date": d.strftime("%Y-%m-%d"), "value": float(v)} for d, v in zip(hist.date, hist.value)],
    }


def bias_report(st: ServiceState, name: str, version: int) -> dict:
    """The latest bias report (JSON) recorded for a model version."""
    from mlflow.exceptions import MlflowException

    from serving.governance.model_audit import ReportIntegrityError, latest_report
    from training import tracking

    tracking.configure(st.settings)
    try:
        report = latest_report(name, version)
    except MlflowException as exc:
        raise QueryError(404, f"{name} has no version {version}") from exc
    except ReportIntegrityError as exc:
        raise QueryError(409, str(exc)) from exc
    if report is None:
        raise QueryError(404, f"{name} version {version} has not been audited")
    return report


def _refused(folder: Path) -> list[str]:
    """The series the last fit refused, as "site/metric: reason"."""
    try:
        return [str(r) for r in json.loads((folder / "fit.json").read_text()).get("refused", [])]
    except (OSError, ValueError, AttributeError):
        return []


def forecast_sites(st: ServiceState) -> list[str]:
    """Sites with forecasts (ICS first)."""
    path = st.settings.home / "forecasts" / "latest" / "forecasts.parquet"
    if not path.exists():
        return []
    sites = sorted(set(_table(path).site))
    return sorted(sites, key=lambda s: (s != "ICS", s))


def _table(path: Path) -> pd.DataFrame:
    """A forecast table, read once per version of the file (the Capacity page draws three charts)."""
    return _read(str(path), path.stat().st_mtime_ns)


@lru_cache(maxsize=4)
def _read(path: str, _version: int) -> pd.DataFrame:
    return pd.read_parquet(path)


def _num(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else float(x)
