"""`phm score`: the daily scoring of the whole population."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Optional

import typer

from phm.cli.render import model_runs
from phm.cli.common import EngineOption, engine_choice, fail, settings, stages
from phm.core.settings import Settings

app = typer.Typer(help="Daily risk scoring of the whole population.", no_args_is_help=True)


def score_day(s: Settings, day: Optional[date] = None, engine: Optional[str] = None, publish: bool = False) -> dict:
    """Run the daily job for `day` (default: the day after the data ends); print the snapshot's summary. A day
    before the live snapshot's is written but served only with `publish`."""
    from features.build import EmptyCohortError, FeatureSourceError
    from features.engine import EngineError
    from serving.batch.common import SnapshotError
    from serving.batch.daily import score_daily
    from serving.batch.store import live_date
    from serving.governance.safety_case import SafetyCaseError

    try:
        with stages("Daily scoring", 5) as advance:
            meta = score_daily(s, day, progress=advance, engine=engine_choice(engine), publish=publish or None)
    except (SnapshotError, EngineError, SafetyCaseError, FeatureSourceError, EmptyCohortError) as exc:
        raise fail(str(exc)) from exc
    except OSError as exc:  # a full or read-only disk: the job's own folder is removed, the pointer untouched
        live = live_date(s)
        raise fail(
            f"the daily job could not write its files ({exc.strerror or type(exc).__name__}"
            f"{': ' + str(exc.filename) if exc.filename else ''}; check the space free under {s.home}); "
            + (f"the service still serves the snapshot of {live}" if live else "there is no snapshot to serve yet")
        ) from exc
    model_runs.daily_scores(meta)
    return meta


@app.command("daily")
def daily_cmd(
    day: Annotated[
        Optional[datetime],
        typer.Option(
            "--date", formats=["%Y-%m-%d"], help="Score as at this date (default: the day after the data ends)."
        ),
    ] = None,
    engine: EngineOption = None,
    publish: Annotated[
        bool,
        typer.Option(
            "--publish",
            help="Serve this snapshot even if its day is before "
            "the live one's (coordinators would then see an older worklist).",
        ),
    ] = False,
) -> None:
    """Score everyone eligible with the champion models; write today's snapshot atomically (on Spark with
    --engine spark: features, scores and reasons computed on the cluster, scores partitioned by practice). A
    snapshot for a day before the live one (`--date` in the past) is kept beside it, not served, unless --publish."""
    score_day(settings(), day.date() if day else None, engine, publish)
