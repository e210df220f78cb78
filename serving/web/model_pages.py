"""The Models page (every role): registered versions, what is deployed, monitoring and persistence; and a
version's calibration plot and model card."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import FastAPI, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, Response

from evaluation import model_card as cards
from serving.schemas import ModelName
from serving.users import Role
from serving.web import views
from serving.web.signin import signed_in
from serving.web.templating import no_favicon, render


# roles that read the full bias report with its exact counts; the others get the card under disclosure control
EXACT_FIGURES = {Role.safety_officer, Role.data_scientist}


def register(app: FastAPI) -> None:
    """Add the Models page, the calibration plot and the model card."""

    @app.get("/models")
    def models(request: Request):
        st, u = signed_in(request, "models")
        from serving.governance import persistence
        from serving.governance.monitoring import latest

        return render(
            request,
            "models.html",
            user=u,
            title="Models",
            versions=views.model_versions(st),
            deployed={n: c.version for n, c in st.bundle.champions.items()},
            monitoring=latest(st.settings),
            persistence=persistence.released(persistence.latest(st.settings), st.policy),
        )

    @app.get("/models/{name}/{version}/calibration.png")
    def calibration_png(request: Request, name: ModelName, version: Annotated[int, PathParam(ge=1, le=1_000_000)]):
        st, u = signed_in(request, "models")
        return Response(
            views.artifact(st, name, version, "plots/calibration.png"),
            media_type="image/png",
            headers={"Cache-Control": "private, max-age=3600"},
        )

    @app.get("/models/{name}/{version}/card")
    def model_card(request: Request, name: ModelName, version: Annotated[int, PathParam(ge=1, le=1_000_000)]):
        st, u = signed_in(request, "models")
        if u.role in EXACT_FIGURES:
            return HTMLResponse(no_favicon(views.artifact(st, name, version, "model_card/model_card.html").decode()))
        card = json.loads(views.artifact(st, name, version, "model_card/model_card.json"))
        return HTMLResponse(no_favicon(cards.render_html(cards.released(card, st.policy))))
