"""One grouping's audit: its tables (cells for the bootstrap, exact estimates, people per group, coverage), then
its result: each group's metrics with intervals, ratios to the reference group (crude and age-sex
standardised) with their status, and the curve points."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from evaluation.fairness import engine
from evaluation.fairness.config import METRICS, AuditConfig
from evaluation.fairness.exact import exact_estimates
from evaluation.fairness.groups import CoverageMeasure, Grouping, coverage_table
from evaluation.fairness.judging import (
    PROPORTIONS,
    _num,
    _status,
    boundary_interval,
    denominators,
    ratio_interval,
    reference_index,
    zero_ratio_interval,
)
from evaluation.fairness.policy import CALIBRATION_METRICS
from evaluation.fairness.results import (
    Comparison,
    CurvePoint,
    GroupingResult,
    GroupRow,
    MetricValue,
)

SHIFTED = ("auroc", "calibration_slope")  # binned in the bootstrap: intervals shifted to the exact value


def _strata(frame: pd.DataFrame, column: str | None) -> tuple[np.ndarray, int]:
    if column and column in frame:
        codes, names = pd.factorize(frame[column].astype("string").fillna("unknown"), sort=True)
        return codes.astype(np.int64), len(names)
    return np.zeros(len(frame), dtype=np.int64), 1


@dataclass
class GroupTables:
    """What one grouping's audit needs, however it was computed: from person rows in-process, or aggregated
    on Spark (`evaluation.fairness.spark_audit`)."""

    names: list[str]  # group labels, sorted
    n_strata: int
    cells: engine.Cells  # group x age-sex stratum x outcome x score bin
    exact: pd.DataFrame  # exact point estimates, one row per group
    people: np.ndarray  # people (not rows) per group, and people with the outcome
    people_events: np.ndarray
    coverage: list[dict]
    rows: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None  # for a bootstrap by person


def group_tables(
    frame: pd.DataFrame,
    g: Grouping,
    y: np.ndarray,
    p: np.ndarray,
    lp: np.ndarray,
    binning: engine.Binning,
    bins: np.ndarray,
    default_stratum: str | None,
    cluster: np.ndarray | None,
    threshold: float,
    probabilities: bool,
    coverage: list[CoverageMeasure],
) -> GroupTables:
    labels = frame[g.column].astype("string").fillna("Unknown")
    codes, names = pd.factorize(labels, sort=True)
    names = [str(x) for x in names]
    stratum, n_strata = _strata(frame, g.stratum or default_stratum)
    shape = (len(names), n_strata, 2, binning.nbins)
    keys = engine.cell_keys(codes, stratum, y, bins, shape)
    exact = exact_estimates(codes, y, p, threshold, len(names), probabilities)
    people, people_events = exact["n"].to_numpy().astype(int), exact["events"].to_numpy().astype(int)
    if cluster is not None:  # several rows per person: the small-group rule counts people
        ncl = int(cluster.max()) + 1
        pair = np.unique(codes.astype(np.int64) * ncl + cluster)
        people = np.bincount(pair // ncl, minlength=len(names))
        pair_ev = np.unique(codes[y == 1].astype(np.int64) * ncl + cluster[y == 1])
        people_events = np.bincount(pair_ev // ncl, minlength=len(names))
    return GroupTables(
        names,
        n_strata,
        engine.tabulate(keys, p, lp, shape),
        exact,
        people,
        people_events,
        coverage_table(frame, g.column, coverage),
        (keys, cluster, p, lp) if cluster is not None else None,
    )


def grouping_result(
    g: Grouping,
    tables: GroupTables,
    cfg: AuditConfig,
    binning: engine.Binning,
    threshold: float,
    curve_thresholds: dict[float, float],
    probabilities: bool,
    seed: int,
) -> GroupingResult:
    names, cells, exact = tables.names, tables.cells, tables.exact
    sizes = exact["n"].to_numpy().astype(int)
    people, people_events = tables.people, tables.people_events
    small = (people < cfg.min_group_size) | (people_events < cfg.min_group_events)
    ref, reference_note = reference_index(names, cfg.references.get(g.name), people, small)
    adjust = cfg.adjust_for_age_sex and g.adjustable and tables.n_strata > 1
    sel_from = binning.first_selected(threshold)
    binned = engine.summarise(cells, sel_from)
    std, uncovered = engine.standardised_reference(cells, ref)
    binned_ref_adj = engine.summarise(std, sel_from, with_slope=False)
    rng = np.random.default_rng(seed)
    draws = engine.bootstrap(cells, sel_from, ref, cfg.bootstrap_draws, rng, adjust, tables.rows)

    metrics = [m for m in ("event_rate", "mean_predicted", *METRICS) if probabilities or m not in CALIBRATION_METRICS]
    judged = [m for m in (g.judged or cfg.flag_metrics) if m in metrics]
    comparisons_judged = max(1, int((~small).sum() - (not small[ref])) * len(judged))
    judged_level = 1 - (1 - cfg.level) / comparisons_judged if cfg.simultaneous else cfg.level
    rows: list[GroupRow] = []
    comparisons: list[Comparison] = []
    dens = [
        denominators(
            sizes[i],
            exact["events"].iloc[i],
            exact["selection_rate"].iloc[i],
            people[i],
            people_events[i],
            tables.rows is not None,
        )
        for i in range(len(names))
    ]
    for i, name in enumerate(names):
        values: dict[str, MetricValue] = {}
        for m in metrics:
            point = exact[m].iloc[i]
            lo, hi = engine.interval(draws.metric[m][:, [i]], cfg.level)
            shift = (point - binned[m][i]) if m in SHIFTED and np.isfinite(binned[m][i]) else 0.0
            ci = (_num(lo[0] + shift), _num(hi[0] + shift))
            exact_ci = boundary_interval(_num(point), dens[i][m], cfg.level) if m in PROPORTIONS else None
            values[m] = MetricValue(value=_num(point), ci=exact_ci or ci)
        rows.append(
            GroupRow(
                group=name,
                n=int(sizes[i]),
                events=int(exact["events"].iloc[i]),
                people=int(people[i]),
                people_with_events=int(people_events[i]),
                is_reference=i == ref,
                small=bool(small[i]),
                metrics=values,
                share_outside_reference_strata=float(uncovered[i]) if adjust else 0.0,
            )
        )
        if i == ref:
            continue
        for m in METRICS:
            if m not in metrics:
                continue
            v, r = exact[m].iloc[i], exact[m].iloc[ref]
            level = judged_level if m in judged else cfg.level
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = _num(v / r) if r else None
                adj = _num(binned[m][i] / binned_ref_adj[m][i]) if adjust and m in binned_ref_adj else None
            ratio_ci = ratio_interval(draws.ratio[m][:, i], ratio, level)
            if ratio == 0 and m in PROPORTIONS:  # 0 in every draw: bounded from the counts instead
                ratio_ci = zero_ratio_interval(dens[i][m], _num(r), draws.metric[m][:, ref], level)
            adj_ci = ratio_interval(draws.adjusted_ratio[m][:, i], adj, level) if adjust else (None, None)
            status = _status(m in judged, cfg.tolerance, bool(small[i]), ratio, ratio_ci, adj, adjust)
            comparisons.append(
                Comparison(
                    grouping=g.name,
                    group=name,
                    metric=m,
                    value=_num(v),
                    reference_group=names[ref],
                    reference_value=_num(r),
                    ratio=ratio,
                    ratio_ci=ratio_ci,
                    ratio_ci_level=level,
                    difference=_num(v - r),
                    adjusted_ratio=adj,
                    adjusted_ratio_ci=adj_ci,
                    status=status,
                )
            )
    curves = []
    for share, t in curve_thresholds.items():
        c = engine.summarise(cells, binning.first_selected(t), with_slope=False)
        for i, name in enumerate(names):
            curves.append(
                CurvePoint(
                    group=name,
                    share=share,
                    threshold=t,
                    selection_rate=_num(c["selection_rate"][i]),
                    tpr=_num(c["tpr"][i]),
                    fpr=_num(c["fpr"][i]),
                    ppv=_num(c["ppv"][i]),
                )
            )
    return GroupingResult(
        name=g.name,
        title=g.title,
        reference=names[ref],
        reference_note=reference_note,
        absent=[e for e in g.expected if e not in names],
        adjusted=adjust,
        judged=judged,
        judged_level=judged_level,
        groups=rows,
        comparisons=comparisons,
        curves=curves,
        coverage=tables.coverage,
    )
