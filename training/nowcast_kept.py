"""The latest bed nowcast kept for the service (`<home>/nowcast/nowcast.json`): its schema, which refuses anything
else (a person-level field, a missing range column, a wrong type), written whole however many runs overlap, and
read back only when it is exactly that."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from phm.core.config import Strict

if TYPE_CHECKING:
    from training.nowcast import Nowcast

NOWCAST_FILE = "nowcast.json"


class KeptNight(Strict):
    """One site's (or the ICS's) one night: counts of beds only."""

    site: str = Field(min_length=1, max_length=60)
    date: date
    in_beds_now: int = Field(ge=0)
    nowcast: float = Field(ge=0)
    q025: float | None = None
    q10: float | None = None
    q90: float | None = None
    q975: float | None = None


class Calibration(Strict):
    """The past nights whose nowcast errors set the ranges."""

    nights: int = Field(ge=0)
    first: date | None = None
    last: date | None = None


class KeptNowcast(Strict):
    """The nowcast as the service shows it."""

    night: date
    made: datetime
    calibration: Calibration
    notes: list[str]
    rows: list[KeptNight] = Field(min_length=1)


def save(result: Nowcast, folder: Path) -> Path:
    """Keep `result` in `folder/nowcast.json`, checked against the schema, written to a file of its own in the same
    folder, flushed to disk and renamed over the kept one (two runs at once each replace it whole)."""
    frame = result.frame.assign(date=result.frame.date.dt.strftime("%Y-%m-%d"))
    record = KeptNowcast(
        night=result.night,
        made=datetime.now().astimezone().replace(microsecond=0),
        calibration=Calibration(
            nights=len(result.calibration),
            first=result.calibration[0] if result.calibration else None,
            last=result.calibration[-1] if result.calibration else None,
        ),
        notes=result.notes,
        rows=json.loads(frame.to_json(orient="records")),
    )
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / NOWCAST_FILE
    fd, part = tempfile.mkstemp(prefix=f".{NOWCAST_FILE}.", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(record.model_dump_json(indent=1))
            out.flush()
            os.fsync(out.fileno())
        os.replace(part, target)
    except BaseException:
        Path(part).unlink(missing_ok=True)
        raise
    return target


def load(path: Path) -> KeptNowcast:
    """The kept nowcast; OSError if it cannot be read, ValueError if it is not exactly a kept nowcast."""
    if not path.is_file():
        raise OSError(f"{path.name} is not a file")
    return KeptNowcast.model_validate_json(path.read_bytes())
