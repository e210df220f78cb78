"""API routes for contact outcomes, the hidden view and caseload uploads (care coordinators, their practices only;
every request is in the access log with the pseudonymised ids it returned or was refused)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from phm.operational.outcomes import Outcome
from serving import outcomes
from serving.access import record
from serving.queries import QueryError
from serving.state import ServiceState
from serving.users import User


class OutcomeRequest(BaseModel):
    """An outcome for one person (pseudonymised id)."""

    model_config = ConfigDict(extra="forbid")
    person_id: str = Field(pattern=r"^[0-9]{1,19}$")
    outcome: Outcome
    note: str | None = Field(
        None,
        max_length=1000,
        description="Optional short note, shown only within the practice scope (the configured limit applies).",
    )
    withdraws: int | None = Field(
        None,
        ge=1,
        description="With outcome recorded_in_error (and only then): the outcome_id of the outcome in force that was "
        "recorded by mistake (as GET /worklist/hidden gives it); the one before it is then in force again.",
    )


def router(state, coordinator) -> APIRouter:
    """The routes, given the API's dependencies: the service state and a coordinator's user."""
    api = APIRouter(tags=["outcomes"])

    @api.post("/worklist/outcomes", status_code=201)
    def record_outcome(
        request: Request, body: OutcomeRequest, st: ServiceState = Depends(state), u: User = Depends(coordinator)
    ) -> dict:
        """Record a contact outcome; it hides the person from the worklist for the configured period. An outcome
        recorded by mistake is withdrawn with outcome recorded_in_error and its outcome_id in `withdraws`."""
        try:
            done = outcomes.record(
                st.settings,
                outcomes.service_locator(st),
                u,
                body.person_id,
                body.outcome.value,
                body.note,
                withdraws=body.withdraws,
            )
        except QueryError:
            record(request, asked=[body.person_id])
            raise
        record(request, people=[done.person_id], practices=[done.practice_code])
        return outcomes.shown(done)

    @api.get("/worklist/hidden")
    def hidden(request: Request, st: ServiceState = Depends(state), u: User = Depends(coordinator)) -> dict:
        """People of your practices hidden by an outcome now, with why and until when."""
        rows = outcomes.hidden(st.settings, u)
        record(request, people=[r["person_id"] for r in rows], practices=u.practices)
        return {"count": len(rows), "rows": rows}

    @api.post("/worklist/caseload")
    async def caseload(
        request: Request,
        team: Annotated[str, Query(min_length=1, max_length=80)],
        st: ServiceState = Depends(state),
        u: User = Depends(coordinator),
    ) -> dict:
        """Replace a team's caseload from a CSV (request body) with an nhs_number column; numbers are pseudonymised
        on arrival and never stored or echoed."""
        body = await request.body()
        answer, mine = await run_in_threadpool(
            outcomes.upload_caseload, st.settings, outcomes.service_locator(st), u, team, body
        )
        record(request, people=mine, practices=u.practices)
        return answer

    return api
