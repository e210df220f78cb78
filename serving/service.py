"""The BentoML service: `bentoml serve serving.service:PHM` (or `phm serve`).

The API (`serving/api.py`) is mounted at /api and the web pages (`serving/web/pages.py`) at /ui; BentoML adds
/readyz, /livez and /healthz (which say only that the service is up), and /metrics when the `service.metrics`
setting allows it; the root page redirects to the web pages (`serving.asgi.Surface`). Models load
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
from serving.asgi import Surface  # noqa: E402
from serving.state import ServiceState  # noqa: E402
from serving.users import authenticate  # noqa: E402
from serving.web.pages import create_pages  # noqa: E402

api = create_app()
pages = create_pages()
SERVICE = get_settings().service
# which proxies' X-Forwarded-Proto/-For the server believes (uvicorn's proxy-headers handling reads this)
os.environ["FORWARDED_ALLOW_IPS"] = ",".join(SERVICE.trusted_proxies) or "none"


def _metrics_user(token):
    st = getattr(api.state, "phm", None)
    return None if st is None else authenticate(st.users.by_digest, token)


@bentoml.service(
    name="phm",
    workers=int(os.environ.get("PHM_SERVICE_WORKERS", "2")),
    traffic={"timeout": 120},
    metrics={"enabled": SERVICE.metrics != "off"},
    logging={"access": {"enabled": False}},
)  # our access log records every protected request
@bentoml.asgi_app(api, path="/api")
@bentoml.asgi_app(pages, path="/ui")
class PHM:
    """PHM Intelligence: worklists, scores, forecasts, scenarios and bias reports behind role-scoped tokens."""

    def __init__(self) -> None:
        settings = get_settings()
        configure_logging(settings)
        self.state = ServiceState(settings, reread=get_settings)
        api.state.phm = self.state
        pages.state.phm = self.state

    @bentoml.api(route="/healthz")
    def healthz(self) -> dict:
        """Up (what is loaded is at /api/health, for signed requests)."""
        return {"status": "ok"}


def _home():
    st = getattr(api.state, "phm", None)
    return None if st is None else st.settings.home


PHM.add_asgi_middleware(Surface, metrics=SERVICE.metrics, users=_metrics_user, home=_home)
