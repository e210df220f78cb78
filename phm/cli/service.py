"""`phm serve`: the BentoML service with the API and the web pages."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from phm.cli.common import console, settings
from phm.core.settings import Settings


def start_service(s: Settings, host: str = "127.0.0.1", port: int = 3000) -> None:
    """Replace this process with `bentoml serve serving.service:PHM` on host:port."""
    bentoml_bin = shutil.which("bentoml", path=str(Path(sys.executable).parent)) or "bentoml"
    env = {**os.environ, "PHM_HOME": str(s.home), "BENTOML_DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true"}
    console.print(
        f"Serving on http://{host}:{port}: web pages at /ui/, API at /api (OpenAPI schema: /api/openapi.json); "
        "Ctrl-C stops it.",
        soft_wrap=True,
    )
    os.execve(bentoml_bin, [bentoml_bin, "serve", "serving.service:PHM", "--host", host, "--port", str(port)], env)


def serve_cmd(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 3000,
) -> None:
    """Start the BentoML service (web pages under /ui, API under /api; BentoML's /readyz, /livez, /metrics)."""
    start_service(settings(), host, port)
