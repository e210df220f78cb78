"""The API's model routes: registered versions and what is deployed, a version's bias report and safety case,
the clinical safety officer's decision and change review (the same records as `phm audit`), and monitoring."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import HTMLResponse

from serving import queries
from serving.api_deps import allow, state, user
from serving.schemas import ChangeReview, Decision
from serving.state import ServiceState
from serving.users import Role, User


def router() -> APIRouter:
    """The model routes."""
    router = APIRouter()

    @router.get("/models", tags=["models"])
    def models(st: ServiceState = Depends(state), u: User = Depends(user)) -> dict:
        """Registered versions, aliases, audit status and headline metrics; what this service has loaded."""
        from training import registry, tracking

        tracking.configure(st.settings)
        return {
            "deployed": {n: c.version for n, c in st.bundle.champions.items()},
            "refused": dict(st.bundle.refusals),
            "worklist_paused": st.bundle.snapshot_refusal,
            "safety_cases": st.bundle.cases,
            "versions": [
                {"name": v.name, "version": v.version, "aliases": v.aliases, "status": v.status, "metrics": v.metrics}
                for v in registry.versions()
            ],
        }

    def _version(name: str, version: int) -> None:
        from training.registry import MODEL_NAMES

        if name not in MODEL_NAMES:
            raise HTTPException(404, f"unknown model {name!r}")
        if version < 1:
            raise HTTPException(422, "version must be 1 or more")

    @router.get("/models/{name}/versions/{version}/bias-report", tags=["models"])
    def bias_report(
        name: str,
        version: int,
        st: ServiceState = Depends(state),
        u: User = Depends(allow(Role.safety_officer, Role.data_scientist)),
        format: Literal["json", "html"] = "json",
    ):
        """The latest bias report recorded for a model version."""
        from evaluation.fairness.report_html import render
        from evaluation.fairness.results import AuditResult

        _version(name, version)
        report = queries.bias_report(st, name, version)
        if format == "html":
            return HTMLResponse(render(AuditResult.model_validate(report)))
        return report

    @router.post("/models/{name}/versions/{version}/decision", tags=["models"])
    def decision(
        name: str,
        version: int,
        body: Decision,
        st: ServiceState = Depends(state),
        u: User = Depends(allow(Role.safety_officer)),
    ) -> dict:
        """A clinical safety officer approves or rejects an audited version (recorded as by `phm audit`)."""
        from serving.governance.safety_case import SafetyCaseError
        from serving.governance.signoff import decide

        _version(name, version)
        try:
            return decide(
                st.settings,
                name,
                version,
                body.decision,
                u.name,
                body.reason,
                body.accept_flags,
                report=body.report_sha256,
                via="service",
            )
        except SafetyCaseError as exc:
            raise HTTPException(409, str(exc)) from exc

    @router.get("/models/{name}/versions/{version}/safety-case", tags=["models"])
    def safety_case(
        name: str,
        version: int,
        st: ServiceState = Depends(state),
        u: User = Depends(allow(Role.safety_officer, Role.data_scientist)),
    ) -> dict:
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

    @router.post("/models/{name}/versions/{version}/change-review", tags=["models"])
    def change_review(
        name: str,
        version: int,
        body: ChangeReview,
        st: ServiceState = Depends(state),
        u: User = Depends(allow(Role.safety_officer)),
    ) -> dict:
        """A clinical safety officer's change-impact review of the configuration in force (as `phm audit
        approve-change|reject-change`), recorded in the hazard log."""
        from serving.governance.safety_case import SafetyCaseError, review_change

        _version(name, version)
        try:
            return review_change(
                st.settings,
                name,
                version,
                body.decision,
                u.name,
                body.reason,
                expected=body.configuration_sha256,
                via="service",
            )
        except SafetyCaseError as exc:
            raise HTTPException(409, str(exc)) from exc

    @router.get("/monitoring", tags=["models"])
    def monitoring(
        st: ServiceState = Depends(state), u: User = Depends(allow(Role.safety_officer, Role.data_scientist))
    ) -> dict:
        """The latest monitoring of each champion: realised performance, drift, fairness, alerts, retraining due."""
        from serving.governance.monitoring import latest

        return latest(st.settings)

    return router
