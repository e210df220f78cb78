"""The daily scoring job on Spark (`phm score daily --engine spark`): the same snapshot as the in-process
job, computed where the rows are.

Features are built by the Spark engine; the champion scores them on the executors (`models.batch`);
ranks follow (risk descending, then person id — the in-process order), so bands are identical; reasons
are computed on the executors for the people in worklist bands only; flare-up risk and the trend join
on person id. The snapshot's scores are written as Parquet partitioned by practice (what coordinators
query), its predictors beside them, then published exactly as in-process: manifest, fsync, rename and
an atomic pointer swap. Ranking moves only (person id, risk) pairs to one partition. The approved random
holdout is applied as in-process (`serving.batch.ranking.hold_out`): the people listed - pseudonym, rank and
band only, a few per cent of everyone - come to the driver, which draws the held-out, moves them below the
listed and adds the day's listed and held-out to the listing record once the snapshot is published; nothing
else about a person is collected to the driver.
"""

from __future__ import annotations

import json
import time
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from evaluation.programme import listing
from features.build import EmptyCohortError, build, data_end_of
from features.sources.codes import CONDITION_KEYS
from features.engine.spark_engine import SparkEngine
from models.batch import explain_spark, score_spark
from models import specs
from phm.core.settings import Settings
from phm.core.sql import literal
from serving.batch.common import approval_record, approved_champion, check_day, check_features, require_champion
from serving.batch.ranking import Cutoffs, Listed, band_limits, hold_out
from serving.batch.store import earlier_folder, pause_mid_write, publish_snapshot, snapshot_meta
from serving.governance.configuration import data_source
from training import tracking

SCORE_COLUMNS = [
    "person_id",
    "practice_code",
    "age_band",
    "sex",
    "segment",
    "conditions",
    "risk",
    "rank",
    "band",
    "held_out",
    "pcn_code",
    "reasons",
    *[s.daily.column for s in specs.columns()],
]


def band_sql(rank: str, people: int, cutoffs: Cutoffs) -> str:
    """The band of a rank, with the limits `serving.batch.ranking.bands` uses for the approved cut-offs."""
    cases = " ".join(f"WHEN {rank} <= {int(last)} THEN {literal(name)}" for name, last in band_limits(cutoffs, people))
    return f"CASE {cases} ELSE 'routine' END"


def score_daily_spark(settings: Settings, day: date | None = None, progress=None, publish: bool | None = None) -> dict:
    from pyspark.sql import functions as F

    say = progress or (lambda _m: None)
    tracking.configure(settings)
    spec = specs.worklist()
    source = data_source(settings)
    champion, approved = require_champion(settings, spec, source)
    cutoffs = list(approved.current.bands.items())
    share = approved.current.holdout_share
    started = time.perf_counter()
    with SparkEngine(settings) as engine:
        spark = engine.spark
        day = day or data_end_of(engine) + timedelta(days=1)
        check_day(engine, day, spec)
        work = settings.features_dir / "daily"
        say(f"building features as at {day} on Spark")
        feat_path = work / f"{spec.name}_{day}_spark.parquet"
        manifest = build(engine, spec.build_config([day]), feat_path)
        check_features(approved, manifest)
        features = spark.read.parquet(str(feat_path.resolve()))
        predictors = list(champion.model.feature_names_in_)
        people = features.count()
        say(f"scoring {people:,} people with {spec.name} version {champion.version} on the executors")
        conditions = [c for c in (f"ltc_{k}" for k in CONDITION_KEYS) if c in features.columns]
        labels = ", ".join(
            f"CASE WHEN coalesce({c}, 0) > 0 THEN {literal(c.removeprefix('ltc_'))} END" for c in conditions
        )
        scored = score_spark(
            features, champion.model, ["person_id", "practice_code", "age_band", "sex", "segment", *conditions]
        )
        engine.temp_view("phm_scored", scored, cache=True)  # scored once: ranking and bands read it twice
        engine.temp_view(
            "phm_ranked",
            spark.sql(
                "SELECT person_id, CAST(row_number() OVER (ORDER BY risk DESC, person_id) AS BIGINT) AS rank "
                "FROM phm_scored"
            ),
            cache=True,  # one window over everyone; the holdout, reasons, bands and the write read it
        )
        ranked = spark.sql(f"""
            SELECT s.person_id, s.practice_code, s.age_band, s.sex, s.segment,
                   concat_ws(',', {labels or "NULL"}) AS conditions, s.risk, r.rank, {band_sql("r.rank", people, cutoffs)} AS band,
                   coalesce(pr.pcn_code, '') AS pcn_code
            FROM phm_scored s JOIN phm_ranked r ON r.person_id = s.person_id
            LEFT JOIN {engine.table("practices")} pr ON pr.practice_code = s.practice_code""")
        ranked, today = withhold_spark(settings, spark, spec.name, ranked, share)
        banded = features.join(ranked.where("band <> 'routine'").select("person_id"), "person_id")
        say("explaining the people in worklist bands on the executors")
        why = explain_spark(banded, champion.model, ["person_id"])
        scores = ranked.join(why, "person_id", "left")
        columns, refused = {}, {}
        for other in specs.columns():  # risks shown beside the worklist's (e.g. a flare-up warning)
            found, case, refusal = approved_champion(settings, other, source)
            if refusal:
                say(f"not scoring {other.title.lower()}: {refusal}")
                refused[other.name] = refusal
            if found is None:
                scores = scores.withColumn(other.daily.column, F.lit(None).cast("double"))
                continue
            say(f"scoring {other.title.lower()}")
            path = work / f"{other.name}_{day}_spark.parquet"
            try:
                check_features(case, build(engine, other.build_config([day]), path))
            except EmptyCohortError as exc:  # nobody it applies to today: an empty column, as in-process
                say(f"{other.title.lower()}: {exc}")
                columns[other.name] = {"version": found.version, "people": 0, "column": other.daily.column}
                columns[other.name].update(approval_record(case))
                scores = scores.withColumn(other.daily.column, F.lit(None).cast("double"))
                continue
            frame = spark.read.parquet(str(path.resolve()))
            columns[other.name] = {
                "version": found.version,
                "people": int(frame.count()),
                "column": other.daily.column,
                **approval_record(case),
            }
            scores = scores.join(
                score_spark(frame, found.model, ["person_id"], other.daily.column), "person_id", "left"
            )
        scores = scores.select(*SCORE_COLUMNS)
        previous = earlier_folder(settings, day, scored_by=(champion.name, champion.version))  # in-process's rule
        if previous is not None:  # trend: the scores of a week before (or the latest earlier ones)
            before = spark.read.parquet(str((previous / "scores.parquet").resolve()))
            scores = scores.join(before.select("person_id", F.col("risk").alias("previous_risk")), "person_id", "left")
        else:  # the first snapshot: no trend, the same empty column as in-process
            scores = scores.withColumn("previous_risk", F.lit(None).cast("double"))
        band_counts = {r["band"]: r["n"] for r in scores.groupBy("band").agg(F.count("*").alias("n")).collect()}
        meta = snapshot_meta(
            day,
            people,
            champion,
            manifest["definition_hash"],
            columns,
            band_counts,
            json.loads((previous / "manifest.json").read_text())["date"] if previous else None,
            "spark",
            approval_record(approved),
            approved.current.bands,
            refused,
        )
        if share:
            meta["holdout"] = {"share": share, "held_out": int(today.held.sum())}

        def write(partial: Path) -> None:
            scores.orderBy("person_id").write.partitionBy("practice_code").parquet(
                str((partial / "scores.parquet").resolve())
            )
            pause_mid_write()
            features.select("person_id", *[F.col(c).cast("double") for c in predictors]).orderBy(
                "person_id"
            ).write.parquet(str((partial / "features.parquet").resolve()))

        say("writing the snapshot")
        folder = publish_snapshot(settings, meta, write, publish)
    if meta["published"]:  # as in-process: a past day kept aside, not served, lists no one
        listing.record(settings, spec.name, day, today.person_id, today.held, share)
    meta["folder"] = str(folder)
    meta["seconds"] = round(time.perf_counter() - started, 1)
    return meta


def withhold_spark(settings: Settings, spark, model: str, ranked, share: float):
    """`ranked` with the approved holdout applied (`held_out`; the held-out moved to routine, ranked just below the
    listed) and who was listed and held out today (for the listing record). The listed come to the driver."""
    from pyspark.sql import functions as F

    listed = ranked.where("band <> 'routine'").select("person_id", "rank", "band").toPandas()
    pid = listed["person_id"].to_numpy("int64")
    rank, band = listed["rank"].to_numpy("int64").copy(), listed["band"].to_numpy(object).copy()
    _, held = hold_out(settings, model, pid, band, share, rank)
    today = Listed(model, pid, held, share)
    if not held.any():
        return ranked.withColumn("held_out", F.lit(False)), today
    moved = spark.createDataFrame(
        pd.DataFrame({"person_id": pid, "new_rank": rank, "new_band": band.astype(str), "held": held})
    )
    return (
        ranked.join(F.broadcast(moved), "person_id", "left")
        .withColumn("rank", F.coalesce("new_rank", "rank").cast("bigint"))
        .withColumn("band", F.coalesce("new_band", "band"))
        .withColumn("held_out", F.coalesce("held", F.lit(False)))
        .drop("new_rank", "new_band", "held")
    ), today
