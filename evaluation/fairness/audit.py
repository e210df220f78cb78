"""Audit any risk score against outcomes by group: exact point estimates (the threshold metrics with
fairlearn's MetricFrame), bootstrap intervals from `engine`, ratios to a stated reference group,
age-sex standardised comparisons, flags, curves and data coverage."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import fairlearn.metrics as fm
from fairlearn.metrics import MetricFrame

from evaluation.fairness import engine, narrative
from evaluation.fairness.config import METRICS, AuditConfig
from evaluation.fairness.groups import CoverageMeasure, Grouping, coverage_table
from evaluation.fairness.absolute import absolute_performance
from evaluation.fairness.mitigation import group_thresholds
from evaluation.disclosure import Policy as DisclosurePolicy
from evaluation.fairness.need import need_audit, thin_record
from evaluation.fairness.publish import protected_counts
from evaluation.fairness.judging import _num, _status, ratio_interval  # noqa: F401 (re-exported)
from evaluation.fairness.results import (AbsoluteResult, AuditResult, Comparison, CurvePoint, GroupingResult, GroupRow, MetricValue,
                                        NeedGroupingResult)
from evaluation.metrics import calibration_slope_intercept
from phm.core.stats import auroc

CALIBRATION_METRICS = ("predicted_to_observed", "calibration_slope", "mean_predicted")
SHIFTED = ("auroc", "calibration_slope")  # binned in the bootstrap: intervals shifted to the exact value


class AuditInputError(ValueError):
    """The scores table cannot be audited (missing column, no outcomes, ...)."""


@dataclass
class Policy:
    """The operating threshold, the thresholds of the curve policies and the score bins of the bootstrap.
    All are order statistics of the scores, so any engine that can sort finds the same values."""

    threshold: float
    curve_thresholds: dict[float, float]
    binning: engine.Binning


def _kth_highest(n: int, share: float) -> int:
    """Ascending position of the score of the k-th highest person, k = ceil(share x n)."""
    return n - max(1, int(np.ceil(share * n)))


def order_positions(n: int, cfg: AuditConfig) -> np.ndarray:
    """Every ascending position (0-based) whose score the policy needs: the bin edges (numpy's 'lower'
    quantiles), the top-share threshold and the curve thresholds."""
    edges = np.floor(np.linspace(0, 1, cfg.score_bins + 1)[1:-1] * (n - 1)).astype(np.int64)
    shares = [*([cfg.top_share] if cfg.threshold is None else []), *cfg.curve_shares]
    return np.unique(np.concatenate([edges, [_kth_highest(n, s) for s in shares]]))


def policy(n: int, cfg: AuditConfig, values: dict[int, float]) -> Policy:
    """The policy from the order statistics `values` (ascending position -> score) of `order_positions`."""
    edges = np.array([values[i] for i in np.floor(np.linspace(0, 1, cfg.score_bins + 1)[1:-1] * (n - 1))
                      .astype(np.int64)])
    threshold = float(cfg.threshold) if cfg.threshold is not None else values[_kth_highest(n, cfg.top_share)]
    curves = {s: values[_kth_highest(n, s)] for s in cfg.curve_shares}
    cuts = np.asarray([threshold, *curves.values()], dtype=float)
    return Policy(threshold, curves, engine.Binning(np.unique(np.concatenate([edges, cuts]))))


def usable_rows(frame: pd.DataFrame, outcome: str, score: str) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Outcome and score as numbers, and which rows have both (0/1 outcome, finite score)."""
    yv = pd.to_numeric(frame[outcome], errors="coerce")
    pv = pd.to_numeric(frame[score], errors="coerce")
    return yv, pv, yv.isin([0, 1]) & pv.notna() & np.isfinite(pv)


def threshold_counts(codes: np.ndarray, y: np.ndarray, flag: np.ndarray, groups: int) -> np.ndarray:
    """People by (group, outcome, flagged), flattened: index (group * 2 + outcome) * 2 + flagged."""
    return np.bincount((codes.astype(np.int64) * 2 + y) * 2 + flag, minlength=groups * 4)


def threshold_metrics(counts: np.ndarray, groups: int) -> pd.DataFrame:
    """Selection rate, TPR, FNR, FPR and PPV per group with fairlearn's MetricFrame, evaluated on the
    (group, outcome, flagged) cross-table with counts as sample weights: exact, and fast at any size."""
    cell = np.flatnonzero(counts)
    g, yy, ff = cell // 4, (cell // 2) % 2, cell % 2
    w = counts[cell].astype(float)

    def guard(fn):
        def metric(y_true, y_pred, sample_weight):
            with np.errstate(divide="ignore", invalid="ignore"):
                return float(fn(np.asarray(y_true), np.asarray(y_pred), np.asarray(sample_weight)))
        return metric

    def rate(num_mask, den_mask):
        return guard(lambda t, f, sw: (sw * num_mask(t, f)).sum() / (sw * den_mask(t, f)).sum()
                     if (sw * den_mask(t, f)).sum() else np.nan)

    metrics = {
        "selection_rate": guard(lambda t, f, sw: fm.selection_rate(t, f, sample_weight=sw)),
        "tpr": rate(lambda t, f: (t == 1) & (f == 1), lambda t, f: t == 1),
        "fnr": rate(lambda t, f: (t == 1) & (f == 0), lambda t, f: t == 1),
        "fpr": rate(lambda t, f: (t == 0) & (f == 1), lambda t, f: t == 0),
        "ppv": rate(lambda t, f: (t == 1) & (f == 1), lambda t, f: f == 1),
    }
    frame = MetricFrame(metrics=metrics, y_true=yy, y_pred=ff, sensitive_features=pd.Series(g, name="group"),
                        sample_params={k: {"sample_weight": w} for k in metrics})
    return frame.by_group.reindex(range(groups)).astype(float)


def _exact(codes: np.ndarray, y: np.ndarray, p: np.ndarray, threshold: float, groups: int,
           probabilities: bool) -> pd.DataFrame:
    """Exact per-group point estimates from the person rows."""
    out = threshold_metrics(threshold_counts(codes, y, (p >= threshold).astype(np.int64), groups), groups)
    n = np.bincount(codes, minlength=groups).astype(float)
    events = np.bincount(codes, weights=y, minlength=groups)
    expected = np.bincount(codes, weights=p, minlength=groups) if probabilities else None
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(groups + 1))
    auc, slope = np.full(groups, np.nan), np.full(groups, np.nan)
    for i in range(groups):
        idx = order[bounds[i]:bounds[i + 1]]
        if idx.size:
            auc[i] = auroc(y[idx], p[idx])
            if probabilities:
                slope[i] = calibration_slope_intercept(y[idx], p[idx])[0]
    return exact_table(out, n, events, expected, auc, slope if probabilities else None)


def exact_table(out: pd.DataFrame, n: np.ndarray, events: np.ndarray, expected: np.ndarray | None,
                auc: np.ndarray, slope: np.ndarray | None) -> pd.DataFrame:
    """The exact point estimates per group, from threshold metrics, counts, sums of risk, AUROC and slope."""
    out["n"], out["events"] = n, events
    with np.errstate(divide="ignore", invalid="ignore"):
        out["event_rate"] = events / n
        if expected is not None:
            out["mean_predicted"] = expected / n
            out["predicted_to_observed"] = expected / events
    out["auroc"] = auc
    if slope is not None:
        out["calibration_slope"] = slope
    return out


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


def _tables(frame: pd.DataFrame, g: Grouping, y: np.ndarray, p: np.ndarray, lp: np.ndarray, binning: engine.Binning,
            bins: np.ndarray, default_stratum: str | None, cluster: np.ndarray | None, threshold: float,
            probabilities: bool, coverage: list[CoverageMeasure]) -> GroupTables:
    labels = frame[g.column].astype("string").fillna("Unknown")
    codes, names = pd.factorize(labels, sort=True)
    names = [str(x) for x in names]
    stratum, n_strata = _strata(frame, g.stratum or default_stratum)
    shape = (len(names), n_strata, 2, binning.nbins)
    keys = engine.cell_keys(codes, stratum, y, bins, shape)
    exact = _exact(codes, y, p, threshold, len(names), probabilities)
    people, people_events = exact["n"].to_numpy().astype(int), exact["events"].to_numpy().astype(int)
    if cluster is not None:  # several rows per person: the small-group rule counts people
        ncl = int(cluster.max()) + 1
        pair = np.unique(codes.astype(np.int64) * ncl + cluster)
        people = np.bincount(pair // ncl, minlength=len(names))
        pair_ev = np.unique(codes[y == 1].astype(np.int64) * ncl + cluster[y == 1])
        people_events = np.bincount(pair_ev // ncl, minlength=len(names))
    return GroupTables(names, n_strata, engine.tabulate(keys, p, lp, shape), exact, people, people_events,
                       coverage_table(frame, g.column, coverage), (keys, cluster, p, lp) if cluster is not None else None)


def grouping_result(g: Grouping, tables: GroupTables, cfg: AuditConfig, binning: engine.Binning, threshold: float,
              curve_thresholds: dict[float, float], probabilities: bool, seed: int) -> GroupingResult:
    names, cells, exact = tables.names, tables.cells, tables.exact
    sizes = exact["n"].to_numpy().astype(int)
    wanted = cfg.references.get(g.name)
    ref = names.index(wanted) if wanted in names else int(np.argmax(sizes))
    adjust = cfg.adjust_for_age_sex and g.adjustable and tables.n_strata > 1
    sel_from = binning.first_selected(threshold)
    binned = engine.summarise(cells, sel_from)
    std, uncovered = engine.standardised_reference(cells, ref)
    binned_ref_adj = engine.summarise(std, sel_from, with_slope=False)
    rng = np.random.default_rng(seed)
    draws = engine.bootstrap(cells, sel_from, ref, cfg.bootstrap_draws, rng, adjust, tables.rows)

    metrics = [m for m in ("event_rate", "mean_predicted", *METRICS) if probabilities or m not in CALIBRATION_METRICS]
    judged = [m for m in (g.judged or cfg.flag_metrics) if m in metrics]
    people, people_events = tables.people, tables.people_events
    small = (people < cfg.min_group_size) | (people_events < cfg.min_group_events)
    comparisons_judged = max(1, int((~small).sum() - (not small[ref])) * len(judged))
    judged_level = 1 - (1 - cfg.level) / comparisons_judged if cfg.simultaneous else cfg.level
    rows: list[GroupRow] = []
    comparisons: list[Comparison] = []
    for i, name in enumerate(names):
        values: dict[str, MetricValue] = {}
        for m in metrics:
            point = exact[m].iloc[i]
            lo, hi = engine.interval(draws.metric[m][:, [i]], cfg.level)
            shift = (point - binned[m][i]) if m in SHIFTED and np.isfinite(binned[m][i]) else 0.0
            values[m] = MetricValue(value=_num(point), ci=(_num(lo[0] + shift), _num(hi[0] + shift)))
        rows.append(GroupRow(group=name, n=int(sizes[i]), events=int(exact["events"].iloc[i]), people=int(people[i]),
                             people_with_events=int(people_events[i]), is_reference=i == ref,
                             small=bool(small[i]), metrics=values,
                             share_outside_reference_strata=float(uncovered[i]) if adjust else 0.0))
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
            adj_ci = ratio_interval(draws.adjusted_ratio[m][:, i], adj, level) if adjust else (None, None)
            status = _status(m in judged, cfg.tolerance, bool(small[i]), ratio, ratio_ci, adj, adjust)
            comparisons.append(Comparison(
                grouping=g.name, group=name, metric=m, value=_num(v), reference_group=names[ref],
                reference_value=_num(r), ratio=ratio, ratio_ci=ratio_ci, ratio_ci_level=level,
                difference=_num(v - r), adjusted_ratio=adj, adjusted_ratio_ci=adj_ci, status=status))
    curves = []
    for share, t in curve_thresholds.items():
        c = engine.summarise(cells, binning.first_selected(t), with_slope=False)
        for i, name in enumerate(names):
            curves.append(CurvePoint(group=name, share=share, threshold=t, selection_rate=_num(c["selection_rate"][i]),
                                     tpr=_num(c["tpr"][i]), fpr=_num(c["fpr"][i]), ppv=_num(c["ppv"][i])))
    return GroupingResult(name=g.name, title=g.title, reference=names[ref], adjusted=adjust, judged=judged,
                          judged_level=judged_level, groups=rows, comparisons=comparisons, curves=curves,
                          coverage=tables.coverage)


def run_audit(frame: pd.DataFrame, groupings: list[Grouping], cfg: AuditConfig, subject: dict,
              outcome: str = "outcome", score: str = "risk", stratum: str | None = "stratum",
              cluster: str | None = None, coverage: list[CoverageMeasure] | None = None,
              coverage_descriptions: dict[str, str] | None = None, progress: Callable[[str], None] | None = None,
              disclosure: DisclosurePolicy | None = None) -> AuditResult:
    """Audit `score` against `outcome` in every grouping. Rows lacking a score or outcome are excluded
    and counted; nothing else is dropped (small groups are marked). With a disclosure `policy`, the group counts
    are also released under it for the publishable report (one row per person only)."""
    say = progress or (lambda _m: None)
    missing = [c for c in (outcome, score, *(g.column for g in groupings)) if c not in frame]
    if missing:
        raise AuditInputError(f"missing column(s) {missing}; available: {list(frame.columns)}")
    yv, pv, usable = usable_rows(frame, outcome, score)
    excluded = int((~usable).sum())
    frame = frame.loc[usable].reset_index(drop=True)
    y = yv[usable].astype(int).to_numpy()
    p = pv[usable].astype(float).to_numpy()
    check_outcomes(outcome, y.size, int(y.sum()))
    probabilities = bool(p.min() >= 0 and p.max() <= 1)
    cfg = judged_config(cfg, probabilities)
    positions = order_positions(p.size, cfg)
    pol = policy(p.size, cfg, dict(zip(positions.tolist(), np.partition(p, positions)[positions].tolist())))
    bins = pol.binning.index(p)
    lp = engine.logit(p) if probabilities else p
    clusters = None
    if cluster and cluster in frame and frame[cluster].duplicated().any():
        clusters = pd.factorize(frame[cluster])[0]
    results = []
    for i, g in enumerate(groupings):
        say(f"auditing {g.title.lower()}")
        tables = _tables(frame, g, y, p, lp, pol.binning, bins, stratum, clusters, pol.threshold, probabilities,
                         coverage or [])
        results.append(grouping_result(g, tables, cfg, pol.binning, pol.threshold, pol.curve_thresholds, probabilities,
                                 cfg.seed + 7919 * i))
    say("performance for everyone")
    absolute = absolute_performance(y, p, bins, pol.binning.nbins, cfg, cfg.seed + 15_485_863, probabilities)
    need, need_note = [], None
    if cfg.need_at_equal_score and clusters is None:
        say("comparing need at equal score")
        need = need_audit(frame, p, cfg, cfg.seed + 104_729)
        if not need:
            need_note = ("Not compared: the table has no measures of need independent of service use (GP-coded "
                         "conditions, frailty deficits, deaths in the follow-up) or none of the standard groupings.")
    elif cfg.need_at_equal_score:
        need_note = "Not compared: people have several rows (person-days); need at equal score needs one row per person."
    population = population_summary(
        cfg, pol.threshold, rows=int(y.size), excluded=excluded,
        people=int(frame[cluster].nunique()) if cluster and cluster in frame else int(y.size), events=int(y.sum()),
        flagged=int((p >= pol.threshold).sum()), probabilities=probabilities,
        bootstrap="Poisson, by person" + (" (clustered rows)" if clusters is not None else ""),
        coverage_descriptions=coverage_descriptions, need_note=need_note)
    mitigation = None
    if cfg.mitigation == "group_thresholds":
        by = next((g for g in groupings if g.name == cfg.mitigation_grouping), None)
        if by is not None:
            say("trying group-specific thresholds")
            mitigation = group_thresholds(frame[by.column].astype("string").fillna("Unknown").to_numpy(), y, p,
                                          pol.threshold, cfg, by.name,
                                          frame[cluster].to_numpy() if cluster and cluster in frame else None)
    result = assemble(subject, cfg, population, results, mitigation, need, absolute)
    if disclosure is not None:
        columns = {g.name: g.column for g in groupings}
        columns.update({n.name: "thin_record" for n in need if n.name == "thin_record"})
        if "thin_record" in columns and "thin_record" not in frame:
            frame = frame.assign(thin_record=thin_record(frame))
        people = frame.assign(**{outcome: y})
        if clusters is not None:  # several rows per person: people (their first row's groups), with any outcome
            people = people.assign(_person=clusters).groupby("_person", sort=False).agg(
                {**{c: "first" for c in set(columns.values())}, outcome: "max"})
        counts = protected_counts(people, columns, outcome, disclosure)
        result = result.model_copy(update={"published_counts": counts}).sealed()
    return result


def check_outcomes(outcome: str, rows: int, events: int) -> None:
    if rows == 0 or events == 0 or events == rows:
        raise AuditInputError(f"outcome {outcome!r} needs both 0s and 1s among scored rows "
                              f"({rows:,} usable rows, {events:,} outcomes)")


def judged_config(cfg: AuditConfig, probabilities: bool) -> AuditConfig:
    """Scores that are not probabilities cannot be judged on calibration."""
    if probabilities:
        return cfg
    return cfg.model_copy(update={"flag_metrics": [m for m in cfg.flag_metrics if m not in CALIBRATION_METRICS]})


def population_summary(cfg: AuditConfig, threshold: float, rows: int, excluded: int, people: int, events: int,
                       flagged: int, probabilities: bool, bootstrap: str,
                       coverage_descriptions: dict[str, str] | None, **extra) -> dict:
    return {
        "rows": rows, "rows_excluded_missing_score_or_outcome": excluded, "people": people,
        "events": events, "event_rate": events / rows, "threshold": threshold,
        "policy": (f"risk >= {cfg.threshold:g}" if cfg.threshold is not None
                   else f"top {cfg.top_share:.1%} by risk (risk >= {threshold:.4f})"),
        "flagged": flagged, "scores_are_probabilities": probabilities, "bootstrap": bootstrap,
        "coverage_descriptions": coverage_descriptions or {}, **extra,
    }


def assemble(subject: dict, cfg: AuditConfig, population: dict, results: list[GroupingResult],
             mitigation, need: list[NeedGroupingResult] | None = None,
             absolute: AbsoluteResult | None = None) -> AuditResult:
    """The sealed result: flags and uncertain gaps in grouping order (then need at equal score), the
    plain-English summary, hazards."""
    need = need or []
    every = [c for r in results for c in r.comparisons] + [c for n in need for c in n.comparisons]
    flags = (absolute.flags if absolute else []) + [c for c in every if c.status == "flag"]
    uncertain = [c for c in every if c.status == "uncertain"]
    result = AuditResult(subject=subject, config=cfg, created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                         population=population, groupings=results, flags=flags, uncertain=uncertain,
                         summary=[], hazards=[], mitigation=mitigation, need=need, absolute=absolute)
    result.summary = narrative.summary(result)
    result.hazards = narrative.hazards(result)
    return result.sealed()
