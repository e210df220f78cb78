"""Fixtures every tier may use. Nothing heavy is imported here (each fixture imports what it needs), so the
unit and spec tiers run without loading MLflow or BentoML. Tiers: `tests/spec` (feature definitions on every
engine), `tests/unit`, `tests/integration` (real DuckDB files, MLflow stores, Spark), `tests/e2e` (the real
`phm` command, a real `bentoml serve`, headless Chromium). Helpers live in `tests/support`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test touches the user's ~/.phm or a real key."""
    monkeypatch.setenv("PHM_HOME", str(tmp_path / "phm_home"))
    monkeypatch.delenv("PHM_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("PHM_CONFIG", raising=False)
    monkeypatch.delenv("PHM_DEMO", raising=False)


@pytest.fixture(scope="session")
def ics20k(tmp_path_factory: pytest.TempPathFactory):
    """The acceptance-size synthetic ICS: 20,000 people, seed 1, no injected problems."""
    from features.synthetic.config import GeneratorConfig
    from features.synthetic.generator import generate

    return generate(GeneratorConfig(persons=20_000, seed=1), tmp_path_factory.mktemp("ics20k"))


@pytest.fixture(scope="session")
def ics20k_loaded(ics20k, tmp_path_factory: pytest.TempPathFactory):
    """(settings, load report) of a home holding the 20,000-person ICS's warehouse."""
    from features.sources.loader import load
    from phm.core.settings import Settings

    settings = Settings(home=tmp_path_factory.mktemp("home20k"))
    return settings, load(settings, ics20k.out_dir)


@pytest.fixture(scope="session")
def ics_defects(tmp_path_factory: pytest.TempPathFactory):
    """A small ICS with 2% malformed rows in every person-level table."""
    from features.synthetic.config import DefectConfig, GeneratorConfig
    from features.synthetic.generator import generate

    cfg = GeneratorConfig(persons=4_000, seed=2, defects=DefectConfig(malformed_share=0.02))
    return generate(cfg, tmp_path_factory.mktemp("ics_defects"))


@pytest.fixture(scope="session")
def ics_defects_loaded(ics_defects, tmp_path_factory: pytest.TempPathFactory):
    from features.sources.loader import load
    from phm.core.settings import Settings

    settings = Settings(home=tmp_path_factory.mktemp("home_defects"))
    return settings, load(settings, ics_defects.out_dir)


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory):
    """One local Spark session (local[2]) for every engine-parity test; skipped without the spark extra."""
    pytest.importorskip("pyspark", reason="the Spark engine needs the spark extra (pip install -e '.[spark]')")
    from features.engine.spark_session import spark_session
    from phm.core.settings import Settings

    session = spark_session(Settings(home=tmp_path_factory.mktemp("spark_home")))
    yield session
    session.stop()


@pytest.fixture(scope="session")
def served_home(ics20k_loaded, tmp_path_factory: pytest.TempPathFactory):
    """A served PHM home: warehouse, an audited, approved champion, forecasts and two daily snapshots."""
    from support.served import make_served_home

    return make_served_home(ics20k_loaded, tmp_path_factory)


@pytest.fixture(scope="session")
def served_tokens(served_home) -> dict[str, str]:
    """A user for each role (two coordinators with different practices): name -> token."""
    from support.served import make_tokens

    return make_tokens(served_home)


@pytest.fixture(scope="session")
def served_url(served_home, served_tokens, tmp_path_factory: pytest.TempPathFactory):
    """A real `bentoml serve` subprocess on 127.0.0.1 for the served home; its base URL."""
    from support.served import serve

    yield from serve(served_home, tmp_path_factory)


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server started for the session (SQLAlchemy URL); skipped when PostgreSQL is absent."""
    from support.postgres import start_postgres

    yield from start_postgres()
