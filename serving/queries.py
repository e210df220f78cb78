"""What the API and the web pages both answer: worklists, cohort summaries and forecasts, with the same
scope rules, small-number suppression and access logging. Errors are `QueryError(status, message)`."""

from __future__ import annotations

import io
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.explain import reasons_from_values
from models import specs
from phm.core import ledger
from serving.schemas import (MAX_ON_DEMAND_REASONS, SUPPRESS_BELOW, Reason, Summary, SummaryRow, Worklist,
                             WorklistQuery, WorklistRow)
from serving.batch.ranking import BAND_ORDER
from serving.batch.store import worklist_version
from serving.state import ServiceState
from serving.users import User

SUMMARY_COLUMNS = {"practice": "practice_code", "pcn": "pcn_code", "segment": "segment", "band": "band",
                   "age_band": "age_band"}


class QueryError(Exception):
    """A request the service refuses: an HTTP status (4xx) and a message for the person who asked."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def access(st: ServiceState, u: User, endpoint: str, persons: int, practices: list[str]) -> None:
    """Append who read how many people's rows, from which practices (the access log)."""
    ledger.append(st.settings.home / "security" / "access_log.jsonl", "access", full_check=False, user=u.name,
                  role=u.role.value, endpoint=endpoint, persons=int(persons), practices=sorted(set(practices)))


def snapshot(st: ServiceState) -> tuple[dict, pd.DataFrame]:
    b = st.bundle
    if b.snapshot_refusal:
        raise QueryError(409, b.snapshot_refusal[0].upper() + b.snapshot_refusal[1:])
    if b.meta is None or b.scores is None:
        raise QueryError(409, "no daily scores yet: run `phm score daily`, then reload")
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


def worklist(st: ServiceState, u: User, q: WorklistQuery, endpoint: str = "worklist") -> Worklist:
    """Today's highest-risk people in the coordinator's practices, filtered and sorted (logged)."""
    meta, scores = snapshot(st)
    asked = practices_asked(st, q.practice, q.pcn)
    wanted = list(u.practices) if asked is None else asked
    outside = sorted(set(wanted) - set(u.practices))
    if outside:
        raise QueryError(403, f"practice(s) {outside} are outside your scope")
    rows = scores[scores.practice_code.isin(wanted)]
    rows = rows[rows.band.map(BAND_ORDER) >= BAND_ORDER[q.min_band.value]]
    if q.age_band:
        rows = rows[rows.age_band == q.age_band]
    if q.segment:
        rows = rows[rows.segment == q.segment]
    if q.condition:
        rows = rows[rows.conditions.str.split(",").apply(lambda cs: q.condition in cs)]
    total = len(rows)
    if q.sort == "risk":
        rows = rows.sort_values("risk", ascending=False)
    elif q.sort == "change":  # biggest rise first; without earlier scores, highest risk first
        rise = rows.risk - rows.previous_risk.fillna(rows.risk) if "previous_risk" in rows else rows.risk * 0
        rows = rows.assign(_d=rise).sort_values(["_d", "risk"], ascending=False)
    else:
        rows = rows.sort_values(["practice_code" if q.sort == "practice" else q.sort, "risk"], ascending=[True, False])
    rows = rows.head(q.top)
    need = [int(p) for p, r in zip(rows.person_id, rows.reasons) if r is None or r != r]
    extra = explain(st, need[:MAX_ON_DEMAND_REASONS]) if need else {}
    out = [WorklistRow(person_id=str(int(r.person_id)), practice_code=r.practice_code, pcn_code=r.pcn_code,
                       age_band=r.age_band, sex=r.sex, segment=r.segment,
                       conditions=[c for c in r.conditions.split(",") if c], risk=float(r.risk), rank=int(r.rank),
                       band=r.band, previous_risk=_num(getattr(r, "previous_risk", None)),
                       flare_risk=_num(getattr(r, "flare_risk", None)),
                       reasons=parse_reasons(r.reasons) or extra.get(int(r.person_id), []))
           for r in rows.itertuples()]
    access(st, u, endpoint, len(out), rows.practice_code.tolist())
    return Worklist(snapshot_date=meta["date"], model_version=worklist_version(meta),
                    practices=wanted, total_matching=total, rows=out,
                    reasons_omitted=max(0, len(need) - MAX_ON_DEMAND_REASONS))


def worklist_csv(result: Worklist) -> str:
    """The worklist as CSV: one row a person, conditions and reasons as readable text."""
    table = pd.DataFrame([{**r.model_dump(exclude={"reasons", "conditions"}), "band": r.band.value,
                           "conditions": ";".join(r.conditions),
                           "reasons": "; ".join(x.words for x in r.reasons)} for r in result.rows],
                         columns=[*WorklistRow.model_fields.keys()])
    buf = io.StringIO()
    table.to_csv(buf, index=False)
    return buf.getvalue()


def cohort_summary(st: ServiceState, u: User, by: str, practice: list[str] | None = None,
                   pcn: str | None = None) -> Summary:
    """Counts of people and mean risk by group, counts under 5 suppressed; coordinators see only theirs."""
    meta, scores = snapshot(st)
    wanted = practices_asked(st, practice, pcn)
    rows = scores if wanted is None else scores[scores.practice_code.isin(wanted)]
    if u.sees_people:
        rows = rows[rows.practice_code.isin(u.practices)]
    grouped = rows.groupby(SUMMARY_COLUMNS[by], observed=True).agg(people=("risk", "size"), mean_risk=("risk", "mean"))
    out = []
    for group, r in grouped.iterrows():
        small = r.people < SUPPRESS_BELOW
        out.append(SummaryRow(group=str(group), people=None if small else int(r.people),
                              people_display=f"<{SUPPRESS_BELOW}" if small else f"{int(r.people):,}",
                              mean_risk=None if small else float(r.mean_risk)))
    return Summary(snapshot_date=meta["date"], by=by, rows=out)


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
        raise QueryError(404, f"no {metric} forecast for {site}")
    if horizon > len(part):
        raise QueryError(422, f"horizon must be at most {len(part)} days")
    part = part.head(horizon)
    hist = _table(folder / "history.parquet")
    hist = hist[(hist.site == site) & (hist.metric == metric)].sort_values("date").tail(history_days)
    rows = part.drop(columns=["sigma_a", "sigma_b"]).assign(date=part.date.dt.strftime("%Y-%m-%d"))
    return {"site": site, "metric": metric, "model": str(part.model.iloc[0]),
            "forecast": json.loads(rows.to_json(orient="records")),
            "history": [{"date": d.strftime("%Y-%m-%d"), "value": float(v)} for d, v in zip(hist.date, hist.value)]}


def bias_report(st: ServiceState, name: str, version: int) -> dict:
    """The latest bias report (JSON) recorded for a model version."""
    from mlflow.exceptions import MlflowException

    from serving.governance.model_audit import latest_report
    from training import tracking

    tracking.configure(st.settings)
    try:
        report = latest_report(name, version)
    except MlflowException as exc:
        raise QueryError(404, f"{name} has no version {version}") from exc
    if report is None:
        raise QueryError(404, f"{name} version {version} has not been audited")
    return report


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
