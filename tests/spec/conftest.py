"""Every spec test runs on each engine: the pandas reference engine, DuckDB and (marked `spark`) Spark."""

from __future__ import annotations

import pytest
from support.engines import ENGINES


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def ics2k_loaded(tmp_path_factory: pytest.TempPathFactory):
    """Settings of a home holding a small synthetic ICS's warehouse: 2,000 people, seed 7."""
    from features.sources.loader import load
    from features.synthetic.config import GeneratorConfig
    from features.synthetic.generator import generate
    from phm.core.settings import Settings

    generated = generate(GeneratorConfig(persons=2_000, seed=7), tmp_path_factory.mktemp("ics2k"))
    settings = Settings(home=tmp_path_factory.mktemp("home2k"))
    load(settings, generated.out_dir)
    return settings
