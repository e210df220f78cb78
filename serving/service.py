"""The BentoML service: `bentoml serve serving.service:PHM` (or `phm serve`).

The API (`serving/api.py`) is mounted at /api and the web pages (`serving/web/pages.py`) at /ui; BentoML adds /readyz, /livez and /metrics. Models load
from the MLflow registry by alias (`champion`) at start-up, and `POST /api/admin/reload` swaps in a new
champion, snapshot or user list without downtime, in every worker process (two by default,
`PHM_SERVICE_WORKERS`).
"""

from __future__ import annotations

import os

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import bentoml  # noqa: E402

from phm.core.logs import configure as configure_logging  # noqa: E402
from phm.core.settings import get_settings  # noqa: E402
from serving.api import create_app  # noqa: E402
from serving.state import ServiceState  # noqa: E402
from serving.web.pages import create_pages  # noqa: E402

api = create_app()
pages = create_pages()


@bentoml.service(name="phm", workers=int(os.environ.get("PHM_SERVICE_WORKERS", "2")), traffic={"timeout": 120},
                  logging={"access": {"enabled": False}})  # our access log records person-level reads
@bentoml.asgi_app(api, path="/api")
@bentoml.asgi_app(pages, path="/ui")
class PHM:
    """PHM Intelligence: worklists, scores, forecasts, scenarios and bias reports behind role-scoped tokens."""

    def __init__(self) -> None:
        settings = get_settings()
        configure_logging(settings)
        self.state = ServiceState(settings)
        api.state.phm = self.state
        pages.state.phm = self.state

    @bentoml.api(route="/healthz")
    def healthz(self) -> dict:
        """What is loaded: snapshot date and deployed model versions (no identifiers)."""
        return {"status": "ok", **self.state.describe()}
