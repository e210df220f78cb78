"""The Equity page (clinical safety officers, data scientists): a version's fairness audit, its safety case and
monitoring's fairness alerts; the bias report itself; and the safety officer's forms that approve or reject a
version's report or a change to its configuration (the same records as `phm audit`)."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse

from serving import queries
from serving.queries import QueryError
from serving.schemas import ModelName
from serving.users import Role
from serving.web import views
from serving.web.signin import check_form, signed_in
from serving.web.templating import PREFIX, no_favicon, render


def register(app: FastAPI) -> None:
    """Add the Equity page, the bias report and the safety officer's decision and change-review forms."""

    @app.get("/equity")
    def equity(
        request: Request,
        model: ModelName | None = None,
        version: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
        done: Literal["approved", "rejected", "change approved", "change rejected"] | None = None,
    ):
        st, u = signed_in(request, "equity")
        versions = views.model_versions(st)
        chosen = views.pick_version(versions, model, version)
        report = views.equity_view(st, chosen) if chosen else None
        from serving.governance.monitoring import latest

        watched = [
            dict(a, model=m["model"], version=m["version"], as_of=m["as_of"])
            for m in latest(st.settings).values()
            for a in m["alerts"]
            if a["kind"] == "fairness"
        ]
        return render(
            request,
            "equity.html",
            user=u,
            title="Equity",
            versions=versions,
            chosen=chosen,
            report=report,
            done=done,
            can_decide=u.role == Role.safety_officer,
            fairness_alerts=watched,
            case=views.safety_case(st, chosen) if chosen else None,
            paused=st.bundle.snapshot_refusal,
            refusals=st.bundle.refusals,
        )

    @app.get("/equity/{name}/{version}/report")
    def equity_report(request: Request, name: ModelName, version: Annotated[int, PathParam(ge=1, le=1_000_000)]):
        st, u = signed_in(request, "equity")
        from evaluation.fairness.report_html import render as render_report
        from evaluation.fairness.results import AuditResult

        report = queries.bias_report(st, name, version)
        return HTMLResponse(no_favicon(render_report(AuditResult.model_validate(report))))

    @app.post("/equity/{name}/{version}/decision")
    async def equity_decision(
        request: Request, name: ModelName, version: Annotated[int, PathParam(ge=1, le=1_000_000)]
    ):
        st, u = signed_in(request, "equity")
        form = await request.form()
        check_form(request, form)
        if u.role != Role.safety_officer:
            raise HTTPException(403, "Only a clinical safety officer can approve or reject a model.")
        from serving.governance.safety_case import SafetyCaseError
        from serving.governance.signoff import decide

        decision = str(form.get("decision", ""))
        reason = str(form.get("reason", "")).strip()
        if decision not in ("approved", "rejected"):
            raise QueryError(422, "Choose approve or reject.")
        if len(reason) < 3 or len(reason) > 2000:
            raise QueryError(422, "Give a reason for your decision (3 to 2,000 characters).")
        report = str(form.get("report", "")).strip().lower()
        if not re.fullmatch(r"[0-9a-f]{8,64}", report):
            raise QueryError(422, "The form does not say which report you read. Reload the page and try again.")
        try:
            decide(
                st.settings,
                name,
                version,
                decision,
                u.name,
                reason,
                accept_flags=form.get("accept_flags") == "yes",
                report=report,
                via="service",
            )
        except SafetyCaseError as exc:
            raise QueryError(409, str(exc)) from exc
        return RedirectResponse(
            f"{PREFIX}/equity?{urlencode({'model': name, 'version': version, 'done': decision})}", status_code=303
        )

    @app.post("/equity/{name}/{version}/change")
    async def equity_change(request: Request, name: ModelName, version: Annotated[int, PathParam(ge=1, le=1_000_000)]):
        """A safety officer's change-impact review of the configuration in force (as `phm audit approve-change`)."""
        st, u = signed_in(request, "equity")
        form = await request.form()
        check_form(request, form)
        if u.role != Role.safety_officer:
            raise HTTPException(403, "Only a clinical safety officer can approve or reject a configuration change.")
        from serving.governance.safety_case import SafetyCaseError, review_change

        decision = str(form.get("decision", ""))
        reason = str(form.get("reason", "")).strip()
        configuration = str(form.get("configuration", "")).strip().lower()
        if decision not in ("approved", "rejected"):
            raise QueryError(422, "Choose approve or reject the change.")
        if len(reason) < 3 or len(reason) > 2000:
            raise QueryError(422, "Give a reason for your decision on the change (3 to 2,000 characters).")
        if not re.fullmatch(r"[0-9a-f]{8,64}", configuration):
            raise QueryError(422, "The form does not say which configuration you reviewed. Reload the page.")
        try:
            review_change(st.settings, name, version, decision, u.name, reason, expected=configuration, via="service")
        except SafetyCaseError as exc:
            raise QueryError(409, str(exc)) from exc
        done = f"change {decision}"
        return RedirectResponse(
            f"{PREFIX}/equity?{urlencode({'model': name, 'version': version, 'done': done})}", status_code=303
        )
