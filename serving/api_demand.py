"""The API's demand routes: a site's forecast with its intervals, the bed nowcast, and a planning scenario."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query

from serving import nowcast_view, queries
from serving.api_deps import allow, state
from serving.schemas import Metric
from serving.state import ServiceState
from serving.users import Role, User
from training.scenarios import Scenario


def router() -> APIRouter:
    """The demand routes."""
    router = APIRouter()

    @router.get("/forecast", tags=["demand"])
    def forecast(
        st: ServiceState = Depends(state),
        u: User = Depends(allow(Role.planner, Role.data_scientist, Role.safety_officer)),
        site: Annotated[str, Query(max_length=20)] = "ICS",
        metric: Metric = "ga_beds_occupied",
        horizon: Annotated[int, Query(ge=1, le=365)] = 28,
    ) -> dict:
        """Forecast with 80%/95% intervals and the probability of exceeding 92% of beds, plus recent history."""
        return queries.forecast(st, site, metric, horizon)

    @router.get("/nowcast", tags=["demand"])
    def nowcast(
        st: ServiceState = Depends(state),
        u: User = Depends(allow(Role.planner, Role.data_scientist, Role.safety_officer)),
        site: Annotated[str, Query(max_length=20)] = "ICS",
    ) -> dict:
        """The latest bed nowcast of a site (or the ICS): beds expected in each of the next nights with 80%/95%
        ranges, from the patients in beds on the night it starts from (`phm forecast nowcast` keeps it)."""
        return nowcast_view.nowcast(st, site)

    @router.post("/scenario", tags=["demand"])
    def scenario(
        body: Scenario, st: ServiceState = Depends(state), u: User = Depends(allow(Role.planner, Role.data_scientist))
    ) -> dict:
        """A planning scenario (schema `Scenario`, version 1): reach the top k% by risk, prevent p%."""
        from training.scenarios import ScenarioError, run_scenario

        try:
            result = run_scenario(st.settings.home / "forecasts" / "latest", body, st.policy)
        except ScenarioError as exc:
            code = 404 if str(exc).startswith("unknown") else 409 if str(exc).startswith("no ") else 422
            raise HTTPException(code, str(exc)) from exc
        return json.loads(result.model_dump_json())

    return router
