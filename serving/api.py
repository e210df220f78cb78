"""The HTTP API (FastAPI, mounted on the BentoML service at /api): typed requests and responses, bearer
tokens mapped to roles and practice scopes, small-number suppression for aggregates, an access-log
entry for every person-level response, and 4xx answers (never a stack trace) for bad input."""

from __future__ import annotations

import io
import json
import logging
from enum import Enum
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field, model_validator

from evaluation.scenarios import Scenario

from models.explain import reasons, reasons_from_values
from phm import ledger
from serving.snapshots import BAND_ORDER
from serving.state import ServiceState
from serving.users import Role, User, authenticate

log = logging.getLogger("phm.serving")
MAX_BODY = 1_000_000  # bytes
MAX_PERSONS = 1_000
MAX_ON_DEMAND_REASONS = 100  # explanations cost ~5 ms a person: beyond the bands, explain at most this many per request
SUPPRESS_BELOW = 5


class Band(str, Enum):
    routine = "routine"
    raised = "raised"
    high = "high"
    very_high = "very high"


PersonId = Annotated[str, Field(pattern=r"^[0-9]{1,19}$", description="Pseudonymised person id (decimal "
                                "digits; a string because it exceeds JavaScript's exact integers).")]


class Reason(BaseModel):
    feature: str
    value: float | None
    words: str
    log_odds: float


class ScoreRequest(BaseModel):
    person_ids: list[PersonId] | None = Field(None, max_length=MAX_PERSONS, description="Pseudonymised person ids.")
    records: list[dict[str, float | None]] | None = Field(
        None, max_length=MAX_PERSONS, description="Feature records (predictor name -> value) to score directly.")
    explain: bool = True

    @model_validator(mode="after")
    def _one(self) -> ScoreRequest:
        if bool(self.person_ids) == bool(self.records):
            raise ValueError("give either person_ids or records (one of them, not empty)")
        return self


class ScoredPerson(BaseModel):
    person_id: PersonId | None = None
    risk: float
    band: Band | None = None
    rank: int | None = None
    practice_code: str | None = None
    reasons: list[Reason] = Field(default_factory=list)


class ScoreResponse(BaseModel):
    model: str
    version: str
    snapshot_date: str | None
    results: list[ScoredPerson]


class WorklistRow(BaseModel):
    person_id: PersonId
    practice_code: str
    pcn_code: str
    age_band: str
    sex: str
    segment: str
    conditions: list[str]
    risk: float
    rank: int
    band: Band
    previous_risk: float | None = None
    flare_risk: float | None = None
    reasons: list[Reason]


class Worklist(BaseModel):
    snapshot_date: str
    model_version: str
    practices: list[str]
    total_matching: int
    reasons_omitted: int = Field(0, description="Rows outside the worklist bands beyond the first "
                                 f"{MAX_ON_DEMAND_REASONS} are returned without reasons.")
    rows: list[WorklistRow]


class SummaryRow(BaseModel):
    group: str
    people: int | None = Field(description="None when fewer than 5 (suppressed).")
    people_display: str
    mean_risk: float | None


class Summary(BaseModel):
    snapshot_date: str
    by: str
    suppressed_below: int = SUPPRESS_BELOW
    rows: list[SummaryRow]


class Decision(BaseModel):
    decision: Literal["approved", "rejected"]
    reason: str = Field(min_length=3, max_length=2000)
    accept_flags: bool = False


class BodyLimit:
    """Refuse bodies over MAX_BODY bytes with 413 (declared or streamed), as plain ASGI (cheap)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return await JSONResponse({"detail": f"request body over {MAX_BODY:,} bytes"}, status_code=413)(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_BODY:
                raise HTTPException(413, f"request body over {MAX_BODY:,} bytes")
            return message

        return await self.app(scope, limited, send)


def create_app() -> FastAPI:
    app = FastAPI(title="PHM Intelligence API", version="1",
                  description="Risk worklists, cohort scoring, demand forecasts and bias reports for an ICS.")

    app.add_middleware(BodyLimit)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError):
        errors = [{"loc": list(e.get("loc", [])), "msg": e.get("msg", "")} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception):
        log.error("unexpected %s in request handling", type(exc).__name__)
        return JSONResponse({"detail": "internal error; the service log has the error type"}, status_code=500)

    # dependencies are async: they are cheap, and a sync one costs a thread hop per request
    async def state(request: Request) -> ServiceState:
        found = getattr(request.app.state, "phm", None)
        if found is None:
            raise HTTPException(503, "the service is starting")
        found.maybe_refresh()
        return found

    async def user(request: Request, st: ServiceState = Depends(state)) -> User:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else None
        found = authenticate(st.bundle.users, token)
        if found is None:
            raise HTTPException(401, "a valid bearer token is needed (create one with `phm users add`)",
                                headers={"WWW-Authenticate": "Bearer"})
        return found

    def allow(*roles: Role):
        async def check(u: User = Depends(user)) -> User:
            if u.role not in roles:
                raise HTTPException(403, f"the {u.role.value} role cannot use this endpoint")
            return u
        return check

    def snapshot(st: ServiceState) -> tuple[dict, pd.DataFrame]:
        b = st.bundle
        if b.meta is None or b.scores is None:
            raise HTTPException(409, "no daily scores yet: run `phm score daily`, then reload")
        return b.meta, b.scores

    def access(st: ServiceState, u: User, endpoint: str, persons: int, practices: list[str]) -> None:
        ledger.append(st.settings.home / "security" / "access_log.jsonl", "access", full_check=False, user=u.name,
                      role=u.role.value, endpoint=endpoint, persons=int(persons), practices=sorted(set(practices)))

    def practices_asked(st: ServiceState, practice: list[str] | None, pcn: str | None) -> list[str] | None:
        """The practices a request names (codes, a PCN, or both: their overlap); None if it names none."""
        if not practice and pcn is None:
            return None
        known = st.bundle.practices
        wanted = sorted({p.strip().upper() for p in practice}) if practice else sorted(known)
        unknown = [p for p in wanted if p not in known]
        if unknown:
            raise HTTPException(404, f"unknown practice code(s) {unknown}")
        if pcn is not None:
            if pcn not in set(known.values()):
                raise HTTPException(404, f"unknown PCN {pcn!r}")
            wanted = [p for p in wanted if known[p] == pcn]
        return wanted

    def parse_reasons(raw: Any) -> list[Reason]:
        if raw is None or (isinstance(raw, float) and np.isnan(raw)):
            return []
        return [Reason(**r) for r in json.loads(raw)]

    def explain(st: ServiceState, ids: list[int]) -> dict[int, list[Reason]]:
        champ = st.bundle.champions.get("emergency_admission")
        if champ is None or not ids:
            return {}
        found, values = st.features_for(ids)
        if not found:
            return {}
        out = reasons_from_values(champ.model, values)
        return {p: [Reason(**r) for r in rs] for p, rs in zip(found, out)}

    @app.get("/health", tags=["service"])
    def health(st: ServiceState = Depends(state)) -> dict:
        """Liveness and what is loaded (no identifiers; no token needed)."""
        return {"status": "ok", **st.describe()}

    @app.get("/me", tags=["service"])
    def me(u: User = Depends(user)) -> dict:
        return {"name": u.name, "role": u.role.value, "practices": u.practices}

    @app.post("/score", tags=["risk"], response_model=ScoreResponse)
    async def score(body: ScoreRequest, st: ServiceState = Depends(state),
                    u: User = Depends(allow(Role.coordinator, Role.data_scientist))):
        """Score people by pseudonymised id (coordinators, their practices only) or feature records."""
        champ = st.bundle.champions.get("emergency_admission")
        if champ is None:
            raise HTTPException(409, "no emergency_admission champion is deployed")
        if body.records:
            names = list(champ.model.feature_names_in_)
            unknown = sorted({k for r in body.records for k in r} - set(names))
            if unknown:
                raise HTTPException(422, f"unknown predictor(s) {unknown[:10]}; see `phm features list`")
            X = pd.DataFrame(body.records, columns=names).astype("float64")
            risk = champ.model.predict_proba(X)[:, 1]
            expl = reasons(champ.model, X) if body.explain else [[] for _ in range(len(X))]
            results = [ScoredPerson(risk=float(r), reasons=[Reason(**x) for x in e]) for r, e in zip(risk, expl)]
            return ScoreResponse(model="emergency_admission", version=champ.version,
                                 snapshot_date=None, results=results)
        if u.role != Role.coordinator:
            raise HTTPException(403, "person-level reads are for care coordinators, within their practices")
        meta, scores = snapshot(st)
        ids = list(dict.fromkeys(int(p) for p in body.person_ids))
        rows = [st.bundle.position.get(i) for i in ids]
        cols = st.bundle.columns
        practice_col = cols["practice_code"]
        allowed = set(u.practices)
        ok = [r for r in rows if r is not None and practice_col[r] in allowed]
        if len(ok) < len(ids):
            raise HTTPException(404, f"{len(ids) - len(ok)} of {len(ids)} person id(s) not found in your practices")
        need = [int(cols["person_id"][r]) for r in ok
                if body.explain and (cols["reasons"][r] is None or cols["reasons"][r] != cols["reasons"][r])]
        extra = explain(st, need[:MAX_ON_DEMAND_REASONS]) if need else {}
        results = []
        for r in ok:
            pid = int(cols["person_id"][r])
            why = (parse_reasons(cols["reasons"][r]) or extra.get(pid, [])) if body.explain else []
            results.append(ScoredPerson(person_id=str(pid), risk=float(cols["risk"][r]), band=cols["band"][r],
                                        rank=int(cols["rank"][r]), practice_code=str(practice_col[r]), reasons=why))
        access(st, u, "score", len(results), [str(practice_col[r]) for r in ok])
        answer = ScoreResponse(model="emergency_admission", version=meta["emergency_admission"]["version"],
                               snapshot_date=meta["date"], results=results)
        return Response(answer.model_dump_json(), media_type="application/json")  # built typed; no second pass

    @app.get("/worklist", tags=["risk"], response_model=Worklist)
    def worklist(st: ServiceState = Depends(state), u: User = Depends(allow(Role.coordinator)),
                 practice: Annotated[list[str] | None, Query(max_length=50)] = None,
                 pcn: Annotated[str | None, Query(max_length=20)] = None,
                 age_band: Annotated[str | None, Query(max_length=10)] = None,
                 segment: Annotated[str | None, Query(max_length=40)] = None,
                 condition: Annotated[str | None, Query(max_length=40)] = None,
                 min_band: Band = Band.raised,
                 top: Annotated[int, Query(ge=1, le=10_000)] = 100,
                 sort: Literal["risk", "practice", "age_band", "change"] = "risk",
                 format: Literal["json", "csv"] = "json"):
        """Today's highest-risk people in the coordinator's practices, filtered and sorted; CSV on request."""
        meta, scores = snapshot(st)
        asked = practices_asked(st, practice, pcn)
        wanted = list(u.practices) if asked is None else asked
        outside = sorted(set(wanted) - set(u.practices))
        if outside:
            raise HTTPException(403, f"practice(s) {outside} are outside your scope")
        rows = scores[scores.practice_code.isin(wanted)]
        rows = rows[rows.band.map(BAND_ORDER) >= BAND_ORDER[min_band.value]]
        if age_band:
            rows = rows[rows.age_band == age_band]
        if segment:
            rows = rows[rows.segment == segment]
        if condition:
            rows = rows[rows.conditions.str.split(",").apply(lambda cs: condition in cs)]
        total = len(rows)
        if sort == "risk":
            rows = rows.sort_values("risk", ascending=False)
        elif sort == "change" and "previous_risk" in rows:
            rows = rows.assign(_d=rows.risk - rows.previous_risk.fillna(rows.risk)).sort_values("_d", ascending=False)
        else:
            rows = rows.sort_values([sort if sort != "practice" else "practice_code", "risk"], ascending=[True, False])
        rows = rows.head(top)
        need = [int(p) for p, r in zip(rows.person_id, rows.reasons) if r is None or r != r]
        extra = explain(st, need[:MAX_ON_DEMAND_REASONS]) if need else {}
        out = [WorklistRow(person_id=str(int(r.person_id)), practice_code=r.practice_code, pcn_code=r.pcn_code,
                           age_band=r.age_band, sex=r.sex, segment=r.segment,
                           conditions=[c for c in r.conditions.split(",") if c], risk=float(r.risk), rank=int(r.rank),
                           band=r.band, previous_risk=_num(getattr(r, "previous_risk", None)),
                           flare_risk=_num(getattr(r, "flare_risk", None)),
                           reasons=parse_reasons(r.reasons) or extra.get(int(r.person_id), []))
               for r in rows.itertuples()]
        access(st, u, f"worklist{'.csv' if format == 'csv' else ''}", len(out), rows.practice_code.tolist())
        result = Worklist(snapshot_date=meta["date"], model_version=meta["emergency_admission"]["version"],
                          practices=wanted, total_matching=total, rows=out,
                          reasons_omitted=max(0, len(need) - MAX_ON_DEMAND_REASONS))
        if format == "csv":
            table = pd.DataFrame([{**r.model_dump(exclude={"reasons", "conditions"}), "band": r.band.value,
                                   "conditions": ";".join(r.conditions),
                                   "reasons": "; ".join(x.words for x in r.reasons)} for r in out])
            buf = io.StringIO()
            table.to_csv(buf, index=False)
            return Response(buf.getvalue(), media_type="text/csv",
                            headers={"Content-Disposition": f"attachment; filename=worklist_{meta['date']}.csv"})
        return result

    @app.get("/cohort/summary", tags=["risk"])
    def cohort_summary(st: ServiceState = Depends(state), u: User = Depends(user),
                       by: Literal["practice", "pcn", "segment", "band", "age_band"] = "band",
                       practice: Annotated[list[str] | None, Query(max_length=50)] = None,
                       pcn: Annotated[str | None, Query(max_length=20)] = None) -> Summary:
        """Counts of people and mean risk by group; counts under 5 are suppressed. Coordinators see only
        their own practices."""
        meta, scores = snapshot(st)
        wanted = practices_asked(st, practice, pcn)
        rows = scores if wanted is None else scores[scores.practice_code.isin(wanted)]
        if u.role == Role.coordinator:
            rows = rows[rows.practice_code.isin(u.practices)]
        column = {"practice": "practice_code", "pcn": "pcn_code"}.get(by, by)
        grouped = rows.groupby(column, observed=True).agg(people=("risk", "size"), mean_risk=("risk", "mean"))
        out = []
        for group, r in grouped.iterrows():
            small = r.people < SUPPRESS_BELOW
            out.append(SummaryRow(group=str(group), people=None if small else int(r.people),
                                  people_display=f"<{SUPPRESS_BELOW}" if small else f"{int(r.people):,}",
                                  mean_risk=None if small else float(r.mean_risk)))
        return Summary(snapshot_date=meta["date"], by=by, rows=out)

    @app.get("/forecast", tags=["demand"])
    def forecast(st: ServiceState = Depends(state),
                 u: User = Depends(allow(Role.planner, Role.data_scientist, Role.safety_officer)),
                 site: Annotated[str, Query(max_length=20)] = "ICS",
                 metric: Literal["emergency_admissions", "ga_beds_occupied", "critical_care_beds_occupied"] = "ga_beds_occupied",
                 horizon: Annotated[int, Query(ge=1, le=365)] = 28) -> dict:
        """Forecast with 80%/95% intervals and the probability of exceeding 92% of beds, plus recent history."""
        folder = st.settings.home / "forecasts" / "latest"
        if not (folder / "forecasts.parquet").exists():
            raise HTTPException(409, "no forecasts yet: run `phm forecast fit`")
        frame = pd.read_parquet(folder / "forecasts.parquet")
        if site not in set(frame.site):
            raise HTTPException(404, f"unknown site {site!r}; sites: {sorted(frame.site.unique())}")
        part = frame[(frame.site == site) & (frame.metric == metric)].sort_values("date")
        if horizon > len(part):
            raise HTTPException(422, f"horizon must be at most {len(part)} days")
        part = part.head(horizon)
        hist = pd.read_parquet(folder / "history.parquet")
        hist = hist[(hist.site == site) & (hist.metric == metric)].sort_values("date").tail(180)
        rows = part.drop(columns=["sigma_a", "sigma_b"]).assign(date=part.date.dt.strftime("%Y-%m-%d"))
        return {"site": site, "metric": metric, "model": str(part.model.iloc[0]),
                "forecast": json.loads(rows.to_json(orient="records")),
                "history": [{"date": d.strftime("%Y-%m-%d"), "value": float(v)} for d, v in zip(hist.date, hist.value)]}

    @app.post("/scenario", tags=["demand"])
    def scenario(body: Scenario, st: ServiceState = Depends(state),
                 u: User = Depends(allow(Role.planner, Role.data_scientist))) -> dict:
        """A planning scenario (schema `Scenario`, version 1): reach the top k% by risk, prevent p%."""
        from evaluation.scenarios import ScenarioError, run_scenario

        try:
            result = run_scenario(st.settings.home / "forecasts" / "latest", body)
        except ScenarioError as exc:
            code = 404 if str(exc).startswith("unknown") else 409 if str(exc).startswith("no ") else 422
            raise HTTPException(code, str(exc)) from exc
        return json.loads(result.model_dump_json())

    @app.get("/models", tags=["models"])
    def models(st: ServiceState = Depends(state), u: User = Depends(user)) -> dict:
        """Registered versions, aliases, audit status and headline metrics; what this service has loaded."""
        from training import registry, tracking

        tracking.configure(st.settings)
        return {"deployed": {n: c.version for n, c in st.bundle.champions.items()},
                "versions": [{"name": v.name, "version": v.version, "aliases": v.aliases, "status": v.status,
                              "metrics": v.metrics} for v in registry.versions()]}

    def _version(name: str, version: int) -> None:
        from training.registry import MODEL_NAMES

        if name not in MODEL_NAMES:
            raise HTTPException(404, f"unknown model {name!r}")
        if version < 1:
            raise HTTPException(422, "version must be 1 or more")

    @app.get("/models/{name}/versions/{version}/bias-report", tags=["models"])
    def bias_report(name: str, version: int, st: ServiceState = Depends(state),
                    u: User = Depends(allow(Role.safety_officer, Role.data_scientist)),
                    format: Literal["json", "html"] = "json"):
        """The latest bias report recorded for a model version."""
        from mlflow.exceptions import MlflowException

        from evaluation.fairness.model_audit import latest_report
        from evaluation.fairness.report_html import render
        from evaluation.fairness.results import AuditResult
        from training import tracking

        _version(name, version)
        tracking.configure(st.settings)
        try:
            report = latest_report(name, version)
        except MlflowException as exc:
            raise HTTPException(404, f"{name} has no version {version}") from exc
        if report is None:
            raise HTTPException(404, f"{name} version {version} has not been audited")
        if format == "html":
            return HTMLResponse(render(AuditResult.model_validate(report)))
        return report

    @app.post("/models/{name}/versions/{version}/decision", tags=["models"])
    def decision(name: str, version: int, body: Decision, st: ServiceState = Depends(state),
                 u: User = Depends(allow(Role.safety_officer))) -> dict:
        """A clinical safety officer approves or rejects an audited version (recorded as by `phm audit`)."""
        from evaluation.fairness.signoff import SignoffError, decide

        _version(name, version)
        try:
            return decide(st.settings, name, version, body.decision, u.name, body.reason, body.accept_flags)
        except SignoffError as exc:
            raise HTTPException(409, str(exc)) from exc

    @app.post("/admin/reload", tags=["service"])
    def reload(st: ServiceState = Depends(state), u: User = Depends(allow(Role.data_scientist))) -> dict:
        """Pick up a new champion, snapshot or user list without a restart."""
        return st.reload()

    return app


def _num(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else float(x)
