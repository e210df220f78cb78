"""The HTTP API (FastAPI, mounted on the BentoML service at /api): typed requests and responses, bearer
tokens mapped to roles and practice scopes, disclosure control for aggregates, an access-log entry for
every request but the public health check (refusals included; 503 when it cannot be written), and 4xx
answers (never a stack trace) for bad input. No documentation UI is served (it would load third-party
scripts); the OpenAPI schema is at /api/openapi.json."""

from __future__ import annotations

import json
import logging
from typing import Annotated, Literal

import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response

from training.scenarios import Scenario
from models.explain import reasons
from models import specs
from serving import outcome_routes, queries, reidentify_api
from serving.batch.store import worklist_version
from serving.access import AccessLog, record
from serving.api_events import events_router
from serving.api_fhir import fhir_router
from serving.asgi import BodyLimit, Guard
from serving.queries import QueryError, parse_reasons
from serving.schemas import (MAX_ON_DEMAND_REASONS, Band, ChangeReview, Decision, Metric, Reason, ScoredPerson,
                             ScoreRequest, ScoreResponse, Sort, Summary, Worklist, WorklistQuery)
from serving.state import ServiceState, UsersUnavailable
from serving.users import Role, User, authenticate

log = logging.getLogger("phm.serving")
PUBLIC = {"/api/health", "/api/openapi.json"}


def create_app() -> FastAPI:
    app = FastAPI(title="PHM Intelligence API", version="1", docs_url=None, redoc_url=None,
                  description="Risk worklists, cohort scoring, demand forecasts and bias reports for an ICS.")

    def home():
        found = getattr(app.state, "phm", None)
        return found.settings.home if found is not None else None

    app.add_middleware(BodyLimit, larger={"/api" + reidentify_api.ROUTE: reidentify_api.BODY_LIMIT})
    app.add_middleware(Guard, log=log)
    app.add_middleware(AccessLog, home=home, protected=lambda _method, path: path not in PUBLIC, log=log)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError):
        errors = [{"loc": list(e.get("loc", [])), "msg": e.get("msg", "")} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(QueryError)
    async def refused(_request: Request, exc: QueryError):
        return JSONResponse({"detail": exc.message}, status_code=exc.status)


    # dependencies are async: they are cheap, and a sync one costs a thread hop per request
    async def state(request: Request) -> ServiceState:
        found = getattr(request.app.state, "phm", None)
        if found is None:
            raise HTTPException(503, "the service is starting")
        found.maybe_refresh()
        return found

    def bearer(request: Request, st: ServiceState) -> User | None:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else None
        try:
            return authenticate(st.users.by_digest, token)
        except UsersUnavailable as exc:
            raise HTTPException(503, "the service cannot read its user list, so it refuses every signed request "
                                     "until an administrator fixes it (the service log says why)") from exc

    async def user(request: Request, st: ServiceState = Depends(state)) -> User:
        found = bearer(request, st)
        if found is None:
            raise HTTPException(401, "a valid bearer token is needed (create one with `phm users add`)",
                                headers={"WWW-Authenticate": "Bearer"})
        record(request, user=found)
        if found.role == Role.data_feed:  # a feed's token posts events (serving.api_events) and reads nothing
            raise HTTPException(403, "the data_feed role can only post events")
        return found

    def allow(*roles: Role):
        async def check(u: User = Depends(user)) -> User:
            if u.role not in roles:
                raise HTTPException(403, f"the {u.role.value} role cannot use this endpoint")
            return u
        return check

    @app.get("/health", tags=["service"])
    def health(request: Request, st: ServiceState = Depends(state)) -> dict:
        """"ok" to anyone; with a valid token also what is loaded (snapshot date, model versions)."""
        try:
            known = bearer(request, st)
        except HTTPException:
            known = None
        return {"status": "ok", **(st.describe() if known is not None else {})}

    @app.get("/me", tags=["service"])
    def me(u: User = Depends(user)) -> dict:
        return {"name": u.name, "role": u.role.value, "practices": u.practices}

    @app.post("/score", tags=["risk"], response_model=ScoreResponse)
    async def score(request: Request, body: ScoreRequest, st: ServiceState = Depends(state),
                    u: User = Depends(allow(Role.coordinator, Role.data_scientist))):
        """Score people by pseudonymised id (coordinators, their practices only) or feature records."""
        worklist_model = specs.worklist().name
        champ = st.bundle.champions.get(worklist_model)
        if champ is None:
            raise HTTPException(409, st.bundle.refusals.get(worklist_model) or f"no {worklist_model} champion is deployed")
        if body.records:
            names = list(champ.model.feature_names_in_)
            unknown = sorted({k for r in body.records for k in r} - set(names))
            if unknown:
                raise HTTPException(422, f"unknown predictor(s) {unknown[:10]}; see `phm features list`")
            X = pd.DataFrame(body.records, columns=names).astype("float64")
            risk = champ.model.predict_proba(X)[:, 1]
            expl = reasons(champ.model, X) if body.explain else [[] for _ in range(len(X))]
            results = [ScoredPerson(risk=float(r), reasons=[Reason(**x) for x in e]) for r, e in zip(risk, expl)]
            return ScoreResponse(model=worklist_model, version=champ.version,
                                 snapshot_date=None, results=results)
        if u.role != Role.coordinator:
            raise HTTPException(403, "person-level reads are for care coordinators, within their practices")
        meta, scores = queries.snapshot(st)
        ids = list(dict.fromkeys(int(p) for p in body.person_ids))
        rows = [st.bundle.position.get(i) for i in ids]
        cols = st.bundle.columns
        practice_col = cols["practice_code"]
        allowed = set(u.practices)
        ok = [r for r in rows if r is not None and practice_col[r] in allowed]
        if len(ok) < len(ids):
            record(request, asked=ids)
            raise HTTPException(404, f"{len(ids) - len(ok)} of {len(ids)} person id(s) not found in your practices")
        need = [int(cols["person_id"][r]) for r in ok
                if body.explain and (cols["reasons"][r] is None or cols["reasons"][r] != cols["reasons"][r])]
        extra = queries.explain(st, need[:MAX_ON_DEMAND_REASONS]) if need else {}
        results = []
        for r in ok:
            pid = int(cols["person_id"][r])
            why = (parse_reasons(cols["reasons"][r]) or extra.get(pid, [])) if body.explain else []
            results.append(ScoredPerson(person_id=str(pid), risk=float(cols["risk"][r]), band=cols["band"][r],
                                        rank=int(cols["rank"][r]), practice_code=str(practice_col[r]), reasons=why))
        record(request, people=ids, practices=[str(practice_col[r]) for r in ok])
        answer = ScoreResponse(model=worklist_model, version=worklist_version(meta),
                               snapshot_date=meta["date"], results=results)
        return Response(answer.model_dump_json(), media_type="application/json")  # built typed; no second pass

    @app.get("/worklist", tags=["risk"], response_model=Worklist)
    def worklist(request: Request, st: ServiceState = Depends(state), u: User = Depends(allow(Role.coordinator)),
                 practice: Annotated[list[str] | None, Query(max_length=50)] = None,
                 pcn: Annotated[str | None, Query(max_length=20)] = None,
                 age_band: Annotated[str | None, Query(max_length=10)] = None,
                 segment: Annotated[str | None, Query(max_length=40)] = None,
                 condition: Annotated[str | None, Query(max_length=40)] = None,
                 min_band: Band = Band.raised,
                 top: Annotated[int, Query(ge=1, le=10_000)] = 100,
                 sort: Sort = "risk",
                 new_within_days: Annotated[int | None, Query(ge=1, le=366)] = None,
                 format: Literal["json", "csv"] = "json"):
        """Today's highest-risk people in the coordinator's practices, filtered and sorted; CSV on request."""
        q = WorklistQuery(practice=practice, pcn=pcn, age_band=age_band, segment=segment, condition=condition,
                          min_band=min_band, top=top, sort=sort, new_within_days=new_within_days)
        result = queries.worklist(st, u, q)
        record(request, people=[r.person_id for r in result.rows], practices=result.practices)
        if format == "csv":
            return Response(queries.worklist_csv(result), media_type="text/csv", headers={
                "Content-Disposition": f"attachment; filename=worklist_{result.snapshot_date}.csv"})
        return result

    app.include_router(outcome_routes.router(state, allow(Role.coordinator)))

    @app.get("/cohort/summary", tags=["risk"])
    def cohort_summary(st: ServiceState = Depends(state), u: User = Depends(user),
                       by: Literal["practice", "pcn", "segment", "band", "age_band"] = "band",
                       practice: Annotated[list[str] | None, Query(max_length=50)] = None,
                       pcn: Annotated[str | None, Query(max_length=20)] = None) -> Summary:
        """People and mean risk by group for the ICS, a PCN or one practice, under the disclosure-control policy
        (small counts hidden, the rest rounded, more hidden where a small one could be worked out). Coordinators
        see only their own practices."""
        return queries.cohort_summary(st, u, by, practice, pcn)

    @app.get("/forecast", tags=["demand"])
    def forecast(st: ServiceState = Depends(state),
                 u: User = Depends(allow(Role.planner, Role.data_scientist, Role.safety_officer)),
                 site: Annotated[str, Query(max_length=20)] = "ICS",
                 metric: Metric = "ga_beds_occupied",
                 horizon: Annotated[int, Query(ge=1, le=365)] = 28) -> dict:
        """Forecast with 80%/95% intervals and the probability of exceeding 92% of beds, plus recent history."""
        return queries.forecast(st, site, metric, horizon)

    @app.post("/scenario", tags=["demand"])
    def scenario(body: Scenario, st: ServiceState = Depends(state),
                 u: User = Depends(allow(Role.planner, Role.data_scientist))) -> dict:
        """A planning scenario (schema `Scenario`, version 1): reach the top k% by risk, prevent p%."""
        from training.scenarios import ScenarioError, run_scenario

        try:
            result = run_scenario(st.settings.home / "forecasts" / "latest", body, st.policy)
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
                "refused": dict(st.bundle.refusals), "worklist_paused": st.bundle.snapshot_refusal,
                "safety_cases": st.bundle.cases,
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
        from evaluation.fairness.report_html import render
        from evaluation.fairness.results import AuditResult

        _version(name, version)
        report = queries.bias_report(st, name, version)
        if format == "html":
            return HTMLResponse(render(AuditResult.model_validate(report)))
        return report

    @app.post("/models/{name}/versions/{version}/decision", tags=["models"])
    def decision(name: str, version: int, body: Decision, st: ServiceState = Depends(state),
                 u: User = Depends(allow(Role.safety_officer))) -> dict:
        """A clinical safety officer approves or rejects an audited version (recorded as by `phm audit`)."""
        from serving.governance.safety_case import SafetyCaseError
        from serving.governance.signoff import decide

        _version(name, version)
        try:
            return decide(st.settings, name, version, body.decision, u.name, body.reason, body.accept_flags,
                          report=body.report_sha256, via="service")
        except SafetyCaseError as exc:
            raise HTTPException(409, str(exc)) from exc

    @app.get("/models/{name}/versions/{version}/safety-case", tags=["models"])
    def safety_case(name: str, version: int, st: ServiceState = Depends(state),
                    u: User = Depends(allow(Role.safety_officer, Role.data_scientist))) -> dict:
        """Whether a version may be used: its report's decision, the approved configuration and every difference
        from the configuration in force now."""
        from serving.governance.safety_case import SafetyCaseError, case
        from training import tracking

        _version(name, version)
        tracking.configure(st.settings)
        try:
            return case(st.settings, name, version).summary()
        except SafetyCaseError as exc:
            raise HTTPException(404, str(exc)) from exc

    @app.post("/models/{name}/versions/{version}/change-review", tags=["models"])
    def change_review(name: str, version: int, body: ChangeReview, st: ServiceState = Depends(state),
                      u: User = Depends(allow(Role.safety_officer))) -> dict:
        """A clinical safety officer's change-impact review of the configuration in force (as `phm audit
        approve-change|reject-change`), recorded in the hazard log."""
        from serving.governance.safety_case import SafetyCaseError, review_change

        _version(name, version)
        try:
            return review_change(st.settings, name, version, body.decision, u.name, body.reason,
                                 expected=body.configuration_sha256, via="service")
        except SafetyCaseError as exc:
            raise HTTPException(409, str(exc)) from exc

    @app.get("/monitoring", tags=["models"])
    def monitoring(st: ServiceState = Depends(state),
                   u: User = Depends(allow(Role.safety_officer, Role.data_scientist))) -> dict:
        """The latest monitoring of each champion: realised performance, drift, fairness, alerts, retraining due."""
        from serving.governance.monitoring import latest

        return latest(st.settings)

    @app.post("/admin/reload", tags=["service"])
    def reload(st: ServiceState = Depends(state), u: User = Depends(allow(Role.data_scientist))) -> dict:
        """Pick up a new champion, snapshot or user list without a restart."""
        return st.reload()

    app.include_router(events_router(state, bearer))
    app.include_router(fhir_router(state, allow(Role.coordinator)))
    app.include_router(reidentify_api.router(state, allow(Role.coordinator)))
    return app

