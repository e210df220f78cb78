"""What both daily jobs share: their error and the default scoring date."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from features.series import data_end


class SnapshotError(RuntimeError):
    """No snapshot can be produced or read (no champion model, no warehouse, ...)."""


def default_date(warehouse: Path) -> date:
    """The day after the data ends."""
    return data_end(warehouse) + timedelta(days=1)
