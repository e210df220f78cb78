"""The Capacity page (planners, safety officers, data scientists): the bed nowcast of the next nights, each site's
demand forecasts with their intervals and the chance of exceeding the bed threshold, a planning scenario, and the
cohort by band and PCN."""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, HTTPException, Query, Request

from serving import nowcast_view, queries
from serving.queries import QueryError
from serving.users import Role
from serving.web import views
from serving.web.signin import signed_in
from serving.web.templating import render


def register(app: FastAPI) -> None:
    """Add the Capacity page."""

    @app.get("/capacity")
    def capacity(
        request: Request,
        site: Annotated[str, Query(max_length=20)] = "ICS",
        horizon: Annotated[int, Query(ge=7, le=90)] = 28,
        top_percent: Annotated[float | None, Query(gt=0, le=50)] = None,
        prevented_percent: Annotated[float | None, Query(ge=0, le=100)] = None,
    ):
        st, u = signed_in(request, "capacity")
        sites = queries.forecast_sites(st)
        if not sites:
            raise QueryError(409, "There are no forecasts yet. A data scientist runs `phm forecast fit` to make them.")
        if site not in sites:
            raise QueryError(404, f"There is no forecast for site {site!r}. Choose one of {', '.join(sites)}.")
        scenario = None
        if top_percent is not None and prevented_percent is not None:
            if u.role not in (Role.planner, Role.data_scientist):
                raise HTTPException(403, "Scenarios are for planners and data scientists.")
            scenario = {"top_share": top_percent / 100, "prevented_share": prevented_percent / 100}
        charts, missing = [], []
        for i, (metric, words, _) in enumerate(views.METRICS):
            try:
                charts.append(views.capacity_chart(st, site, metric, horizon, scenario, i))
            except QueryError as exc:  # a series the fit refused (too short, mostly zeros): say so, show the rest
                if exc.status != 404:
                    raise
                missing.append({"title": words, "why": exc.message})
        try:
            nowcast, nowcast_missing = nowcast_view.nowcast(st, site), None
        except QueryError as exc:  # none kept yet, or not for this site: say so, show the rest
            nowcast, nowcast_missing = None, exc.message
        summary = queries.cohort_summary(st, u, "band")
        return render(
            request,
            "capacity.html",
            user=u,
            title="Capacity",
            site=site,
            sites=sites,
            horizon=horizon,
            charts=charts,
            missing=missing,
            nowcast=nowcast,
            nowcast_missing=nowcast_missing,
            scenario=scenario,
            top_percent=top_percent or 5,
            can_plan=u.role != Role.safety_officer,
            prevented_percent=20 if prevented_percent is None else prevented_percent,
            summary=summary,
            by_pcn=queries.cohort_summary(st, u, "pcn"),
            policy_words=st.policy.words(),
        )
