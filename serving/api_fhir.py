"""FHIR R4 `RiskAssessment` out to care records (coordinator scope): `GET /api/fhir/RiskAssessment?patient=<id>`
answers a searchset Bundle for one pseudonymised person in the caller's practices (an empty Bundle otherwise:
nobody outside the scope is confirmed to exist); `GET /api/fhir/RiskAssessment/$export` streams NDJSON for everyone
in the caller's practices (or those of them named). Every person returned is recorded in the access log. A person
held out for the programme's evaluation gets no RiskAssessment (their score is withheld): the search answers an
OperationOutcome saying so, and the export leaves them out. People a coordinator recorded as moved away or died are
no longer the practice's patients: neither answer includes them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from phm.operational import outcomes
from phm.operational.database import DatabaseError
from phm.operational.outcomes import Outcome
from serving import queries
from serving.access import record
from serving.fhir_risk import ndjson, risk_assessment
from serving.holdout_view import HELD_OUT_NOTE, HoldoutUnknown
from serving.queries import QueryError
from serving.state import ServiceState
from serving.users import User

FHIR_JSON, FHIR_NDJSON = "application/fhir+json", "application/fhir+ndjson"


def _gone(st: ServiceState, practices: list[str]) -> set[int]:
    """The people of `practices` a coordinator recorded as moved away or died (in force): no longer the practice's
    patients, so no RiskAssessment of theirs goes to its care records (the worklist leaves them out too)."""
    try:
        found = outcomes.in_force(st.settings, practices=practices)
    except DatabaseError as exc:
        raise QueryError(
            503,
            "the outcome store cannot be reached, so people recorded as moved away or died cannot be left out; "
            "try again shortly",
        ) from exc
    return {r.person_id for r in found if r.outcome is Outcome.moved_or_died}


def _held(st: ServiceState) -> frozenset[int]:
    try:
        return st.held_out.ids()
    except HoldoutUnknown as exc:
        raise QueryError(503, str(exc)) from None


def fhir_router(state: Callable, coordinator: Callable) -> APIRouter:
    """The router, given the API's service-state dependency and its coordinator-only user dependency."""
    router = APIRouter()

    @router.get("/fhir/RiskAssessment", tags=["fhir"])
    def search(
        request: Request,
        patient: Annotated[str, Query(pattern=r"^(Patient/)?[0-9]{1,19}$")],
        st: ServiceState = Depends(state),
        u: User = Depends(coordinator),
    ):
        meta, scores = queries.snapshot(st)
        person = int(patient.removeprefix("Patient/"))
        rows = scores[(scores.person_id == person) & scores.practice_code.isin(u.practices)]
        if not rows.empty and person in _gone(st, list(u.practices)):
            rows = rows.iloc[:0]  # as for anyone not the practice's patient: nothing
        held = _held(st)
        record(request, people=rows.person_id.tolist(), asked=[person] if rows.empty else None)
        if not rows.empty and person in held:
            outcome = {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "information", "code": "suppressed", "diagnostics": HELD_OUT_NOTE}],
            }
            return JSONResponse(
                {
                    "resourceType": "Bundle",
                    "type": "searchset",
                    "total": 0,
                    "entry": [{"resource": outcome, "search": {"mode": "outcome"}}],
                },
                media_type=FHIR_JSON,
            )
        entries = [{"resource": risk_assessment(r, meta), "search": {"mode": "match"}} for r in rows.itertuples()]
        return JSONResponse(
            {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries},
            media_type=FHIR_JSON,
        )

    @router.get("/fhir/RiskAssessment/$export", tags=["fhir"])
    def export(
        request: Request,
        practice: Annotated[list[str] | None, Query()] = None,
        st: ServiceState = Depends(state),
        u: User = Depends(coordinator),
    ):
        meta, scores = queries.snapshot(st)
        wanted = sorted({p.strip().upper() for p in practice}) if practice else list(u.practices)
        outside = sorted(set(wanted) - set(u.practices))
        if outside:
            raise QueryError(403, f"practice(s) {outside} are outside your scope")
        rows = scores[scores.practice_code.isin(wanted)].sort_values("rank")
        held = _held(st)
        if held:
            rows = rows[~rows.person_id.isin(list(held))]
        gone = _gone(st, wanted)
        if gone:
            rows = rows[~rows.person_id.isin(list(gone))]
        record(request, people=rows.person_id.tolist(), practices=wanted)
        return StreamingResponse(ndjson(rows, meta), media_type=FHIR_NDJSON)

    return router
