"""Shared fixtures: small synthetic ICSs generated once per session, and loaded warehouses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")

from features.sources.loader import LoadReport, load  # noqa: E402
from features.synthetic.config import DefectConfig, GeneratorConfig  # noqa: E402
from features.synthetic.generator import GenerationResult, generate  # noqa: E402
from phm.settings import Settings  # noqa: E402
from served import served_home, served_tokens, served_url  # noqa: E402,F401 (session fixtures)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test touches the user's ~/.phm or a real key."""
    monkeypatch.setenv("PHM_HOME", str(tmp_path / "phm_home"))
    monkeypatch.delenv("PHM_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("PHM_CONFIG", raising=False)
    monkeypatch.delenv("PHM_DEMO", raising=False)


@pytest.fixture(scope="session")
def ics20k(tmp_path_factory: pytest.TempPathFactory) -> GenerationResult:
    """The acceptance-size synthetic ICS: 20,000 people, seed 1, no injected problems."""
    return generate(GeneratorConfig(persons=20_000, seed=1), tmp_path_factory.mktemp("ics20k"))


@pytest.fixture(scope="session")
def ics20k_loaded(ics20k: GenerationResult, tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, LoadReport]:
    settings = Settings(home=tmp_path_factory.mktemp("home20k"))
    return settings, load(settings, ics20k.out_dir)


@pytest.fixture(scope="session")
def ics_defects(tmp_path_factory: pytest.TempPathFactory) -> GenerationResult:
    """A small ICS with 2% malformed rows in every person-level table."""
    cfg = GeneratorConfig(persons=4_000, seed=2, defects=DefectConfig(malformed_share=0.02))
    return generate(cfg, tmp_path_factory.mktemp("ics_defects"))


@pytest.fixture(scope="session")
def ics_defects_loaded(ics_defects: GenerationResult,
                       tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, LoadReport]:
    settings = Settings(home=tmp_path_factory.mktemp("home_defects"))
    return settings, load(settings, ics_defects.out_dir)


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory):
    """One local Spark session (local[2]) for every engine-parity test; skipped without the spark extra."""
    pytest.importorskip("pyspark", reason="the Spark engine needs the spark extra (pip install -e '.[spark]')")
    from features.engine.spark_session import spark_session

    session = spark_session(Settings(home=tmp_path_factory.mktemp("spark_home")))
    yield session
    session.stop()
