"""The fairness audit of a Spark-scored table, aggregated on the cluster: no person's row reaches the driver.

The in-process audit (`audit.py`) needs, per grouping, counts by group x age-sex stratum x outcome x
score bin (with sums of risk and of its logit), exact threshold metrics, AUROC and calibration slope per
group, and coverage by group. Here every one of those is an aggregate computed by Spark; the driver then
runs the same bootstrap, comparisons, flags and report as in-process, so both give the same audit.

What is collected to the driver, exactly:
- about 200 order statistics of the score (the bin edges, the operating threshold and the curve
  thresholds: single values, not people);
- per grouping: the cell table (at most groups x strata x 2 x bins rows of counts and sums), per group
  the Mann-Whitney numerator and its counts (AUROC), the five sums of each Newton step of the calibration
  slope, and coverage means;
- row counts, outcome counts and the score's range.
Tables with several rows per person (flare-up person-days) need a bootstrap by person over rows, and
the group-specific threshold mitigation needs person rows: both stay in-process and are refused here.
Group labels are computed on the executors by the in-process functions themselves (`mapInPandas`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from evaluation.fairness import engine
from evaluation.fairness.absolute import from_counts
from evaluation.fairness.audit import AuditInputError, assemble, check_outcomes, population_summary
from evaluation.fairness.exact import exact_table, threshold_metrics
from evaluation.fairness.grouping_audit import GroupTables, grouping_result
from evaluation.fairness.policy import judged_config, order_positions, policy
from evaluation.fairness.config import AuditConfig
from evaluation.fairness.groups import KEEP, NEED_COLUMNS, CoverageMeasure, Grouping, audit_frame, standard_labels
from evaluation.fairness.results import AuditResult

COLLECTED = (
    "aggregates only: ~200 order statistics of the score, cell counts and sums per grouping, per-group "
    "AUROC numerators, calibration-slope Newton sums and coverage means"
)
LABELS = {
    "ethnicity_broad": "string",
    "ethnicity": "string",
    "imd_quintile": "string",
    "core20": "string",
    "ethnicity_x_deprivation": "string",
    "sex_label": "string",
    "age_band": "string",
    "stratum": "string",
    "ethnicity_recorded": "double",
    "imd_linked": "double",
}
COVERAGE_TYPES = {
    "outcome": "int",
    "risk": "double",
    "gp_coded_conditions": "int",
    "hospital_coded_conditions": "int",
    "conditions_in_both": "int",
    "contacts_12m": "double",
}


def audit_rows_spark(scored: Any, label: str, risk: str = "risk") -> Any:
    """`groups.standard_labels(groups.audit_frame(...))` of a Spark table of scored features: the in-process
    functions themselves, applied batch by batch on the executors (one pass)."""
    sample = standard_labels(audit_frame(scored.limit(0).toPandas(), label, np.array([], dtype=float)))
    fields = {f.name: f.dataType.simpleString() for f in scored.schema.fields}
    kept = [c for c in (*KEEP, *NEED_COLUMNS) if c in sample.columns and c not in LABELS]
    added = [c for c in sample.columns if c not in kept]
    types = {**COVERAGE_TYPES, **LABELS}
    schema = ", ".join([f"{c} {fields[c]}" for c in kept] + [f"{c} {types[c]}" for c in added])
    casts = {c: {"int": "int32", "double": "float64"}[types[c]] for c in added if types[c] != "string"}

    def run(batches):
        for part in batches:
            out = standard_labels(audit_frame(part, label, part[risk].to_numpy()))
            yield out[kept + added].astype(casts)

    return scored.where(f"{label} IS NOT NULL").mapInPandas(run, schema)


def run_audit_spark(
    frame: Any,
    groupings: list[Grouping],
    cfg: AuditConfig,
    subject: dict,
    outcome: str = "outcome",
    score: str = "risk",
    stratum: str | None = "stratum",
    cluster: str | None = None,
    coverage: list[CoverageMeasure] | None = None,
    coverage_descriptions: dict[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> AuditResult:
    """`audit.run_audit` for a Spark DataFrame, from aggregates (see the module notes for what is collected)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    say = progress or (lambda _m: None)
    missing = [c for c in (outcome, score, *(g.column for g in groupings)) if c not in frame.columns]
    if missing:
        raise AuditInputError(f"missing column(s) {missing}; available: {frame.columns}")
    if cfg.mitigation != "none":
        raise AuditInputError("group-specific threshold mitigation needs person rows: run the audit in-process")
    coverage = [m for m in (coverage or []) if all(c in frame.columns for c in m.column.split("/"))]
    y, p = F.col(outcome).cast("double"), F.col(score).cast("double")
    usable = y.isin(0.0, 1.0) & p.isNotNull() & ~F.isnan(p) & (F.abs(p) != float("inf"))
    cover_cols = sorted({c for m in coverage for c in m.column.split("/")})
    strata = {g.name: (g.stratum or stratum) for g in groupings}
    strata = {k: (v if v and v in frame.columns else None) for k, v in strata.items()}
    wanted = (
        {g.column for g in groupings}
        | {s for s in strata.values() if s}
        | set(cover_cols)
        | ({cluster} if cluster and cluster in frame.columns else set())
    )
    every = frame.select(usable.alias("_ok"), y.alias("_yd"), p.alias("_p"), *sorted(wanted))
    spark = frame.sparkSession
    every = every.persist()  # the scored table is computed once, here
    rows = every.where("_ok").withColumn("_y", F.col("_yd").cast("int")).drop("_ok", "_yd")
    long_narrow = None
    try:
        say("counting usable rows on Spark")
        total = every.count()
        stats = rows.agg(
            F.count("*").alias("n"), F.sum("_y").alias("events"), F.min("_p").alias("lo"), F.max("_p").alias("hi")
        ).collect()[0]
        n, events = int(stats["n"]), int(stats["events"] or 0)
        check_outcomes(outcome, n, events)
        if cluster and cluster in frame.columns and rows.groupBy(cluster).count().where("count > 1").limit(1).count():
            raise AuditInputError(f"several rows per {cluster}: a bootstrap by person needs the rows; audit in-process")
        probabilities = bool(stats["lo"] >= 0 and stats["hi"] <= 1)
        cfg = judged_config(cfg, probabilities)
        say("finding the policy thresholds and score bins (order statistics)")
        positions = order_positions(n, cfg).tolist()
        ranked = rows.select("_p").withColumn("_pos", F.row_number().over(Window.orderBy("_p")) - 1)
        values = {int(r["_pos"]): float(r["_p"]) for r in ranked.where(F.col("_pos").isin(positions)).collect()}
        pol = policy(n, cfg, values)
        edges = pol.binning.edges
        bin_expr = sum((F.when(F.col("_p") >= F.lit(float(e)), 1).otherwise(0) for e in edges), F.lit(0))
        clipped = F.least(F.greatest(F.col("_p"), F.lit(engine.EPS)), F.lit(1 - engine.EPS))
        lp = F.log(clipped / (1 - clipped)) if probabilities else F.col("_p")
        entries = [
            F.struct(
                F.lit(i).alias("gi"),
                F.coalesce(F.col(g.column).cast("string"), F.lit("Unknown")).alias("label"),
                F.col(g.column).cast("string").alias("raw"),
                (
                    F.coalesce(F.col(strata[g.name]).cast("string"), F.lit("unknown"))
                    if strata[g.name]
                    else F.lit("all")
                ).alias("stratum"),
            )
            for i, g in enumerate(groupings)
        ]
        long = rows.select(
            "_y", "_p", bin_expr.alias("_bin"), lp.alias("_lp"), *cover_cols, F.explode(F.array(*entries)).alias("x")
        ).select("x.gi", "x.label", "x.raw", "x.stratum", "_y", "_p", "_bin", "_lp", *cover_cols)
        say("aggregating cells, AUROC and coverage by group on Spark")
        cells = (
            long.groupBy("gi", "label", "stratum", "_y", "_bin")
            .agg(F.count("*").alias("n"), F.sum("_p").alias("p_sum"), F.sum("_lp").alias("logit_sum"))
            .toPandas()
        )
        by_score = long.groupBy("gi", "label", "_p").agg(
            F.sum("_y").alias("pos"), (F.count("*") - F.sum("_y")).alias("neg")
        )
        below = F.coalesce(
            F.sum("neg").over(
                Window.partitionBy("gi", "label").orderBy("_p").rowsBetween(Window.unboundedPreceding, -1)
            ),
            F.lit(0),
        )
        auc = (
            by_score.withColumn("_u", F.col("pos") * (below + 0.5 * F.col("neg")))
            .groupBy("gi", "label")
            .agg(F.sum("_u").alias("u"), F.sum("pos").alias("P"), F.sum("neg").alias("N"))
            .toPandas()
        )
        cover = _coverage(long, coverage, F) if coverage else pd.DataFrame()
        if probabilities:  # Newton steps re-read (grouping, group, outcome, logit) only: kept in memory
            long_narrow = long.select("gi", "label", "_y", "_lp").persist()
        slopes = _slopes(long_narrow, spark, F, say) if probabilities else {}
        results = []
        for i, g in enumerate(groupings):
            say(f"auditing {g.title.lower()}")
            tables = _tables(i, cells, auc, cover, slopes, coverage, pol, probabilities)
            results.append(
                grouping_result(
                    g, tables, cfg, pol.binning, pol.threshold, pol.curve_thresholds, probabilities, cfg.seed + 7919 * i
                )
            )
        first = pol.binning.first_selected(pol.threshold)
        flagged = int(cells.loc[(cells.gi == 0) & (cells._bin >= first), "n"].sum())
    finally:
        every.unpersist()
        if long_narrow is not None:
            long_narrow.unpersist()
    absolute = _absolute(cells, pol.binning.nbins, cfg, probabilities)
    population = population_summary(
        cfg,
        pol.threshold,
        rows=n,
        excluded=total - n,
        people=n,
        events=events,
        flagged=flagged,
        probabilities=probabilities,
        bootstrap="Poisson, by person",
        coverage_descriptions=coverage_descriptions,
        engine="spark",
        collected=COLLECTED,
        need_note=(
            "Not compared on Spark (it needs the person rows): audit in-process for need at equal score."
            if cfg.need_at_equal_score
            else None
        ),
    )
    return assemble(subject, cfg, population, results, None, [], absolute)


def _absolute(cells: pd.DataFrame, nbins: int, cfg: AuditConfig, probabilities: bool):
    """Performance for everyone from the first grouping's cells (every person once), binned point estimates."""
    part = cells[cells.gi == 0]
    key = part._y.to_numpy().astype(np.int64) * nbins + part._bin.to_numpy().astype(np.int64)

    def total(w: np.ndarray) -> np.ndarray:
        return np.bincount(key, weights=w, minlength=2 * nbins).reshape(2, nbins)

    return from_counts(
        total(part.n.to_numpy(dtype=float)),
        total(part.p_sum.to_numpy()),
        total(part.logit_sum.to_numpy()),
        cfg,
        cfg.seed + 15_485_863,
        probabilities,
    )


def _coverage(long: Any, coverage: list[CoverageMeasure], F) -> pd.DataFrame:
    aggs = [F.count("*").alias("n")]
    for m in coverage:
        if m.kind == "ratio":
            num, den = m.column.split("/")
            aggs += [
                F.sum(num).cast("double").alias(f"{m.name}__num"),
                F.sum(den).cast("double").alias(f"{m.name}__den"),
            ]
        else:
            aggs.append(F.avg(F.col(m.column).cast("double")).alias(m.name))
    return long.where("raw IS NOT NULL").groupBy("gi", "raw").agg(*aggs).toPandas()


def _slopes(long: Any, spark: Any, F, say, iters: int = 50) -> dict[tuple[int, str], float]:
    """Calibration slope per (grouping, group): `metrics._newton_logistic` on [1, logit p], one Spark
    aggregation per Newton step for every group at once; each group stops at its own convergence."""
    counts = long.groupBy("gi", "label").agg(F.sum("_y").alias("ev"), F.count("*").alias("n")).collect()
    beta = {(r["gi"], r["label"]): np.zeros(2) for r in counts if 0 < r["ev"] < r["n"]}
    active = set(beta)
    for step_no in range(iters):
        if not active:
            break
        say(f"calibration slopes: Newton step {step_no + 1} ({len(active)} groups)")
        coefs = spark.createDataFrame(
            [(gi, label, float(b[0]), float(b[1])) for (gi, label), b in beta.items() if (gi, label) in active],
            "gi int, label string, b0 double, b1 double",
        )
        eta = F.least(F.greatest(F.col("b0") + F.col("b1") * F.col("_lp"), F.lit(-30.0)), F.lit(30.0))
        mu = 1 / (1 + F.exp(-eta))
        sums = (
            long.join(F.broadcast(coefs), ["gi", "label"])
            .select("gi", "label", "_lp", mu.alias("mu"), "_y")
            .select(
                "gi",
                "label",
                "_lp",
                (F.col("mu") * (1 - F.col("mu"))).alias("w"),
                (F.col("_y") - F.col("mu")).alias("r"),
            )
            .groupBy("gi", "label")
            .agg(
                F.sum("w").alias("w"),
                F.sum(F.col("w") * F.col("_lp")).alias("wx"),
                F.sum(F.col("w") * F.col("_lp") * F.col("_lp")).alias("wxx"),
                F.sum("r").alias("r"),
                F.sum(F.col("r") * F.col("_lp")).alias("rx"),
            )
            .collect()
        )
        for r in sums:
            key = (r["gi"], r["label"])
            hess = np.array([[r["w"], r["wx"]], [r["wx"], r["wxx"]]]) + 1e-9 * np.eye(2)
            step = np.linalg.solve(hess, np.array([r["r"], r["rx"]]))
            beta[key] = beta[key] + step
            if np.max(np.abs(step)) < 1e-10:
                active.discard(key)
    return {k: float(b[1]) for k, b in beta.items()}


def _tables(
    i: int,
    cells: pd.DataFrame,
    auc: pd.DataFrame,
    cover: pd.DataFrame,
    slopes: dict,
    coverage: list[CoverageMeasure],
    pol,
    probabilities: bool,
) -> GroupTables:
    part = cells[cells.gi == i]
    names = sorted(part.label.unique())
    strata = sorted(part.stratum.unique())
    shape = (len(names), len(strata), 2, pol.binning.nbins)
    g_code = part.label.map({v: k for k, v in enumerate(names)}).to_numpy()
    s_code = part.stratum.map({v: k for k, v in enumerate(strata)}).to_numpy()
    keys = engine.cell_keys(g_code, s_code, part._y.to_numpy(), part._bin.to_numpy(), shape)
    size = int(np.prod(shape))
    n = np.bincount(keys, weights=part.n.to_numpy(dtype=float), minlength=size).reshape(shape)
    cells_ = engine.Cells(
        n,
        np.bincount(keys, weights=part.p_sum.to_numpy(), minlength=size).reshape(shape),
        np.bincount(keys, weights=part.logit_sum.to_numpy(), minlength=size).reshape(shape),
    )
    sel_from = pol.binning.first_selected(pol.threshold)
    counts = np.zeros(len(names) * 4)  # (group, outcome, flagged), as exact.threshold_counts
    for y_ in (0, 1):
        counts[np.arange(len(names)) * 4 + y_ * 2] = n[:, :, y_, :sel_from].sum((1, 2))
        counts[np.arange(len(names)) * 4 + y_ * 2 + 1] = n[:, :, y_, sel_from:].sum((1, 2))
    out = threshold_metrics(counts.astype(np.int64), len(names))
    groups_n, events = n.sum((1, 2, 3)), n[:, :, 1, :].sum((1, 2))
    a = auc[auc.gi == i].set_index("label").reindex(names)
    with np.errstate(divide="ignore", invalid="ignore"):
        aurocs = np.where((a.P > 0) & (a.N > 0), a.u / (a.P * a.N), np.nan)
    slope = np.array([slopes.get((i, name), np.nan) for name in names]) if probabilities else None
    exact = exact_table(
        out, groups_n, events, cells_.p_sum.sum((1, 2, 3)) if probabilities else None, aurocs.astype(float), slope
    )
    rows = []
    if not cover.empty:
        for _, r in cover[cover.gi == i].sort_values("raw").iterrows():
            row = {"group": str(r["raw"]), "n": int(r["n"])}
            for m in coverage:
                if m.kind == "ratio":
                    den = r[f"{m.name}__den"]
                    row[m.name] = float(r[f"{m.name}__num"]) / den if den else None
                else:
                    row[m.name] = float(r[m.name])
            rows.append(row)
    people = groups_n.astype(int)
    return GroupTables(names, len(strata), cells_, exact, people, events.astype(int), rows)
