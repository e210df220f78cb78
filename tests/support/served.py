"""One served PHM home for the whole session, shared by the API tests and the browser tests: a 20,000-person
warehouse with an audited, approved champion, forecasts, two daily snapshots a week apart, a user for each
role, and a real `bentoml serve` subprocess on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest

from evaluation.fairness.config import AuditConfig
from serving.governance.model_audit import audit_model
from serving.governance.signoff import decide, promote
from phm.cli.forecast import scenario_inputs
from support.homes import copied_home, train_quickly
from phm.core.settings import Settings
from serving.batch.common import default_date
from serving.batch.daily import score_daily
from serving.batch.store import snapshots_root
from serving.users import Role, add_user
from training.demand import ForecastConfig
from training.demand_job import run_fit
from training.nowcast import NowcastConfig, current
from training.nowcast_kept import save as save_nowcast
from features.series import data_end

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_served_home(ics20k_loaded, tmp_path_factory) -> Settings:
    """A served PHM home: warehouse, champion (audited, approved, promoted), forecasts, a bed nowcast, and daily
    snapshots a week apart (for the trend)."""
    home = copied_home(ics20k_loaded[0], tmp_path_factory.mktemp("service_home"))
    train_quickly(home)
    out = audit_model(home, "emergency_admission", 1, AuditConfig(bootstrap_draws=100))
    decide(home, "emergency_admission", 1, "approved", "Dr Test", "test approval", accept_flags=bool(out.result.flags))
    promote(home, "emergency_admission", 1, by="tests")
    out, _, _ = run_fit(
        home, ForecastConfig(origins=2, workers=1, models=["seasonal_naive", "harmonic_ar"]), sites=["ICS"]
    )
    scenario_inputs(home, out.folder)
    end = pd.Timestamp(data_end(home.warehouse_path))
    save_nowcast(current(home.warehouse_path, NowcastConfig(), end), home.home / "nowcast")
    today = default_date(home.warehouse_path)
    score_daily(home, today - timedelta(days=7))
    score_daily(home, today)
    return home


def make_tokens(served_home) -> dict[str, str]:
    """A user for each role (two coordinators with different practices): name -> token."""
    home = served_home
    scores = pd.read_parquet(next(snapshots_root(home).glob("*/scores.parquet")))
    practices = scores.practice_code.value_counts().index.tolist()
    out = {}
    for name, role, scope in (
        ("coord", Role.coordinator, practices[:1]),
        ("other", Role.coordinator, practices[1:2]),
        ("planner", Role.planner, []),
        ("cso", Role.safety_officer, []),
        ("ds", Role.data_scientist, []),
    ):
        _, out[name] = add_user(home.home, name, role, scope)
    out["practice"], out["other_practice"] = practices[0], practices[1]
    return out


class Server:
    """A real `bentoml serve` subprocess on 127.0.0.1 for a PHM home (extra environment in `env`); `start` and
    `stop` may be repeated (a restart keeps the port)."""

    def __init__(self, home: Settings, log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.home, self.log_path, self.env = home, log_dir / "bentoml.log", env or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> str:
        env = {
            **os.environ,
            "PHM_HOME": str(self.home.home),
            "BENTOML_DO_NOT_TRACK": "true",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            **self.env,
        }
        with open(self.log_path, "a") as log:  # a file, not a pipe: a long session must never block on a full pipe
            self.proc = subprocess.Popen(
                [str(BIN / "bentoml"), "serve", "serving.service:PHM", "--host", "127.0.0.1", "--port", str(self.port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                pytest.fail("bentoml serve exited:\n" + self.log_path.read_text()[-3000:])
            time.sleep(0.5)
        pytest.fail("bentoml serve did not become ready in 90 s")

    def stop(self) -> None:
        if self.proc is None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text()


def serve(served_home, tmp_path_factory, env: dict[str, str] | None = None):
    """A real `bentoml serve` subprocess on 127.0.0.1 for the served home; its base URL."""
    server = Server(served_home, tmp_path_factory.mktemp("service_log"), env)
    yield server.start()
    server.stop()
    assert "Traceback" not in server.log()  # no request made the service crash or print a stack trace
