"""The daily scoring job: one entry, `score_daily`, which runs the in-process job (DuckDB,
`serving.batch.inprocess`) or the Spark job (`serving.batch.spark_job`); both publish through the one
snapshot store (`serving.batch.store`)."""

from __future__ import annotations

from datetime import date

from phm.core.settings import Settings


def score_daily(
    settings: Settings, day: date | None = None, progress=None, engine: str | None = None, publish: bool | None = None
) -> dict:
    """Score everyone eligible on `day` and publish the snapshot (a day before the live snapshot's only with
    `publish=True`; see `serving.batch.store.publish_snapshot`); on Spark when `engine` (or the `engine`
    setting) says so, in-process on DuckDB otherwise."""
    if (engine or settings.engine) == "spark":
        from serving.batch.spark_job import score_daily_spark

        return score_daily_spark(settings, day, progress, publish)
    from serving.batch.inprocess import score_daily_inprocess

    return score_daily_inprocess(settings, day, progress, publish)
