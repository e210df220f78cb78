"""Every spec test runs on each engine: the pandas reference engine, DuckDB and (marked `spark`) Spark."""

from __future__ import annotations

import pytest
from support.engines import ENGINES


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return request.param
