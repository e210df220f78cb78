"""Audit any risk score against outcomes by group: exact point estimates (the threshold metrics with
fairlearn's MetricFrame), bootstrap intervals from `engine`, ratios to a stated reference group,
age-sex standardised comparisons, flags, curves and data coverage."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import fairlearn.metrics as fm
from fairlearn.metrics import MetricFrame
from scipy.stats import norm

from evaluation.fairness import engine, narrative
from evaluation.fairness.config import METRICS, AuditConfig
from evaluation.fairness.groups import CoverageMeasure, Grouping, coverage_table
from evaluation.fairness.mitigation import group_thresholds
from evaluation.fairness.results import AuditResult, Comparison, CurvePoint, GroupingResult, GroupRow, MetricValue
from evaluation.metrics import calibration_slope_intercept
from phm.stats import auroc

CALIBRATION_METRICS = ("predicted_to_observed", "calibration_slope", "mean_predicted")
SHIFTED = ("auroc", "calibration_slope")  # binned in the bootstrap: intervals shifted to the exact value


class AuditInputError(ValueError):
    """The scores table cannot be audited (missing column, no outcomes, ...)."""


def operating_threshold(p: np.ndarray, cfg: AuditConfig) -> float:
    """The fixed threshold, or the score of the k-th highest person for the top-share policy."""
    if cfg.threshold is not None:
        return float(cfg.threshold)
    k = max(1, int(np.ceil(cfg.top_share * p.size)))
    return float(np.partition(p, p.size - k)[p.size - k])


def _threshold_metrics(codes: np.ndarray, y: np.ndarray, flag: np.ndarray, groups: int) -> pd.DataFrame:
    """Selection rate, TPR, FNR, FPR and PPV per group with fairlearn's MetricFrame, evaluated on the
    (group, outcome, flagged) cross-table with counts as sample weights: exact, and fast at any size."""
    key = (codes.astype(np.int64) * 2 + y) * 2 + flag
    counts = np.bincount(key, minlength=groups * 4)
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
    out = _threshold_metrics(codes, y, (p >= threshold).astype(np.int64), groups)
    n = np.bincount(codes, minlength=groups).astype(float)
    events = np.bincount(codes, weights=y, minlength=groups)
    out["n"], out["events"] = n, events
    with np.errstate(divide="ignore", invalid="ignore"):
        out["event_rate"] = events / n
        if probabilities:
            expected = np.bincount(codes, weights=p, minlength=groups)
            out["mean_predicted"] = expected / n
            out["predicted_to_observed"] = expected / events
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(groups + 1))
    auc, slope = np.full(groups, np.nan), np.full(groups, np.nan)
    for i in range(groups):
        idx = order[bounds[i]:bounds[i + 1]]
        if idx.size:
            auc[i] = auroc(y[idx], p[idx])
            if probabilities:
                slope[i] = calibration_slope_intercept(y[idx], p[idx])[0]
    out["auroc"] = auc
    if probabilities:
        out["calibration_slope"] = slope
    return out


def _num(x) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def _status(judged: bool, lo_hi: tuple[float, float], small: bool, ratio: float | None, ci: tuple,
            adj: float | None, adjustable: bool) -> str:
    if not judged:
        return "shown only"
    if small:
        return "small group"
    if ratio is None:
        return "not estimable"
    lo, hi = lo_hi
    if lo <= ratio <= hi:
        return "within tolerance"
    if ci[0] is None or ci[1] is None or ci[0] <= 1 <= ci[1]:
        return "uncertain"
    if adjustable and adj is not None and lo <= adj <= hi:
        return "explained by age and sex"
    return "flag"


def ratio_interval(draws: np.ndarray, point: float | None, level: float) -> tuple[float | None, float | None]:
    """Interval for a ratio from the spread of its bootstrap draws on the log scale (normal
    approximation, so extreme simultaneous levels do not depend on a handful of tail draws)."""
    d = draws[np.isfinite(draws) & (draws > 0)]
    if point is None or point <= 0 or d.size < max(10, draws.size // 10):
        return None, None
    z = float(norm.ppf(1 - (1 - level) / 2))
    se = float(np.std(np.log(d), ddof=1))
    return float(point * np.exp(-z * se)), float(point * np.exp(z * se))


def _strata(frame: pd.DataFrame, column: str | None) -> tuple[np.ndarray, int]:
    if column and column in frame:
        codes, names = pd.factorize(frame[column].astype("string").fillna("unknown"), sort=True)
        return codes.astype(np.int64), len(names)
    return np.zeros(len(frame), dtype=np.int64), 1


def _grouping(frame: pd.DataFrame, g: Grouping, cfg: AuditConfig, y: np.ndarray, p: np.ndarray, lp: np.ndarray,
              binning: engine.Binning, bins: np.ndarray, default_stratum: str | None,
              cluster: np.ndarray | None, threshold: float, curve_thresholds: dict[float, float],
              probabilities: bool, seed: int, coverage: list[CoverageMeasure]) -> GroupingResult:
    labels = frame[g.column].astype("string").fillna("Unknown")
    codes, names = pd.factorize(labels, sort=True)
    names = [str(x) for x in names]
    sizes = np.bincount(codes, minlength=len(names))
    wanted = cfg.references.get(g.name)
    ref = names.index(wanted) if wanted in names else int(np.argmax(sizes))
    stratum, n_strata = _strata(frame, g.stratum or default_stratum)
    adjust = cfg.adjust_for_age_sex and g.adjustable and n_strata > 1
    shape = (len(names), n_strata, 2, binning.nbins)
    keys = engine.cell_keys(codes, stratum, y, bins, shape)
    cells = engine.tabulate(keys, p, lp, shape)
    sel_from = binning.first_selected(threshold)
    binned = engine.summarise(cells, sel_from)
    std, uncovered = engine.standardised_reference(cells, ref)
    binned_ref_adj = engine.summarise(std, sel_from, with_slope=False)
    exact = _exact(codes, y, p, threshold, len(names), probabilities)
    rng = np.random.default_rng(seed)
    rows_arg = (keys, cluster, p, lp) if cluster is not None else None
    draws = engine.bootstrap(cells, sel_from, ref, cfg.bootstrap_draws, rng, adjust, rows_arg)

    metrics = [m for m in ("event_rate", "mean_predicted", *METRICS) if probabilities or m not in CALIBRATION_METRICS]
    judged = [m for m in (g.judged or cfg.flag_metrics) if m in metrics]
    people, people_events = sizes, exact["events"].to_numpy()
    if cluster is not None:  # several rows per person: the small-group rule counts people
        ncl = int(cluster.max()) + 1
        pair = np.unique(codes.astype(np.int64) * ncl + cluster)
        people = np.bincount(pair // ncl, minlength=len(names))
        pair_ev = np.unique(codes[y == 1].astype(np.int64) * ncl + cluster[y == 1])
        people_events = np.bincount(pair_ev // ncl, minlength=len(names))
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
                          coverage=coverage_table(frame, g.column, coverage))


def run_audit(frame: pd.DataFrame, groupings: list[Grouping], cfg: AuditConfig, subject: dict,
              outcome: str = "outcome", score: str = "risk", stratum: str | None = "stratum",
              cluster: str | None = None, coverage: list[CoverageMeasure] | None = None,
              coverage_descriptions: dict[str, str] | None = None, progress: Callable[[str], None] | None = None
              ) -> AuditResult:
    """Audit `score` against `outcome` in every grouping. Rows lacking a score or outcome are excluded
    and counted; nothing else is dropped (small groups are marked)."""
    say = progress or (lambda _m: None)
    missing = [c for c in (outcome, score, *(g.column for g in groupings)) if c not in frame]
    if missing:
        raise AuditInputError(f"missing column(s) {missing}; available: {list(frame.columns)}")
    yv = pd.to_numeric(frame[outcome], errors="coerce")
    pv = pd.to_numeric(frame[score], errors="coerce")
    usable = yv.isin([0, 1]) & pv.notna() & np.isfinite(pv)
    excluded = int((~usable).sum())
    frame = frame.loc[usable].reset_index(drop=True)
    y = yv[usable].astype(int).to_numpy()
    p = pv[usable].astype(float).to_numpy()
    if y.size == 0 or y.sum() == 0 or y.sum() == y.size:
        raise AuditInputError(f"outcome {outcome!r} needs both 0s and 1s among scored rows "
                              f"({y.size:,} usable rows, {int(y.sum()):,} outcomes)")
    probabilities = bool(p.min() >= 0 and p.max() <= 1)
    if not probabilities:
        cfg = cfg.model_copy(update={"flag_metrics": [m for m in cfg.flag_metrics if m not in CALIBRATION_METRICS]})
    threshold = operating_threshold(p, cfg)
    curve_thresholds = {s: operating_threshold(p, cfg.model_copy(update={"threshold": None, "top_share": s}))
                        for s in cfg.curve_shares}
    binning = engine.make_binning(p, cfg.score_bins, [threshold, *curve_thresholds.values()])
    bins = binning.index(p)
    lp = engine.logit(p) if probabilities else p
    clusters = None
    if cluster and cluster in frame and frame[cluster].duplicated().any():
        clusters = pd.factorize(frame[cluster])[0]
    results = []
    for i, g in enumerate(groupings):
        say(f"auditing {g.title.lower()}")
        results.append(_grouping(frame, g, cfg, y, p, lp, binning, bins, stratum, clusters,
                                 threshold, curve_thresholds, probabilities, cfg.seed + 7919 * i, coverage or []))
    flags = [c for r in results for c in r.comparisons if c.status == "flag"]  # in grouping order
    uncertain = [c for r in results for c in r.comparisons if c.status == "uncertain"]
    population = {
        "rows": int(y.size), "rows_excluded_missing_score_or_outcome": excluded,
        "people": int(frame[cluster].nunique()) if cluster and cluster in frame else int(y.size),
        "events": int(y.sum()), "event_rate": float(y.mean()), "threshold": threshold,
        "policy": (f"risk >= {cfg.threshold:g}" if cfg.threshold is not None
                   else f"top {cfg.top_share:.1%} by risk (risk >= {threshold:.4f})"),
        "flagged": int((p >= threshold).sum()), "scores_are_probabilities": probabilities,
        "bootstrap": "Poisson, by person" + (" (clustered rows)" if clusters is not None else ""),
        "coverage_descriptions": coverage_descriptions or {},
    }
    mitigation = None
    if cfg.mitigation == "group_thresholds":
        by = next((g for g in groupings if g.name == cfg.mitigation_grouping), None)
        if by is not None:
            say("trying group-specific thresholds")
            mitigation = group_thresholds(frame[by.column].astype("string").fillna("Unknown").to_numpy(), y, p,
                                          threshold, cfg, by.name,
                                          frame[cluster].to_numpy() if cluster and cluster in frame else None)
    result = AuditResult(subject=subject, config=cfg, created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                         population=population, groupings=results, flags=flags, uncertain=uncertain,
                         summary=[], hazards=[], mitigation=mitigation)
    result.summary = narrative.summary(result)
    result.hazards = narrative.hazards(result)
    return result.sealed()
