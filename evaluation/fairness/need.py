"""Need at equal score: within each risk decile, are some groups sicker than the reference group?

A score trained on a proxy of need (emergency admission is one: it depends on how communities use
hospitals) can be well calibrated for the proxy in every group and still rank a group that uses
services less below equally sick people elsewhere (Obermeyer et al., Science 2019). This module
compares groups on measures of need that do not depend on service use, at the same score.

For each group and measure, the observed need (the sum over the group's people) is divided by the need
expected if each person had the reference group's mean need *in the same score decile* (indirect
standardisation): a ratio above 1 means the group is sicker at the same score. An age-sex adjusted ratio
uses the reference group's mean in the same decile *and* age-sex stratum. Need values are small integers
(capped), so a person-level Poisson bootstrap is exact on counts by (group, decile, stratum, value), as
in `engine`. Flags follow the audit's rule: ratio above the tolerance band, a simultaneous interval (over
the grouping's judged comparisons) excluding 1, not explained by age and sex.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from evaluation.fairness.config import AuditConfig
from evaluation.fairness.judging import _num, _status, ratio_interval, reference_index
from evaluation.fairness.results import Comparison, MetricValue, NeedCell, NeedGroupingResult

DECILES = 10
THIN, FULLER = "Thin record", "Fuller record"
CAP = 20  # need values above this are counted as this (a count of conditions or deficits rarely is)


@dataclass(frozen=True)
class NeedMeasure:
    name: str
    title: str
    column: str


NEED_MEASURES = [
    NeedMeasure("need_gp_conditions", "long-term conditions coded by the GP", "gp_coded_conditions"),
    NeedMeasure("need_frailty", "frailty deficits coded by the GP", "frailty_deficits"),
    NeedMeasure("need_death", "deaths in the follow-up", "died_in_follow_up"),
]


@dataclass(frozen=True)
class NeedGrouping:
    name: str
    title: str
    column: str
    measures: tuple[str, ...] | None = None  # judged measures (default: all)


NEED_GROUPINGS = [
    NeedGrouping("ethnicity_broad", "Ethnicity (broad group)", "ethnicity_broad"),
    NeedGrouping("imd_quintile", "Deprivation (IMD quintile)", "imd_quintile"),
    NeedGrouping("ethnicity_x_deprivation", "Ethnicity x deprivation", "ethnicity_x_deprivation"),
    # a thin GP record codes fewer conditions and deficits by definition: judged on deaths only
    NeedGrouping(
        "thin_record",
        "Thin record (ethnicity not coded, or no GP prescribing in 12 months)",
        "thin_record",
        measures=("need_death",),
    ),
]


def thin_record(frame: pd.DataFrame) -> pd.Series | None:
    """Thin record: ethnicity not coded, or no GP prescribing in the 12 months before the index date (little
    contact with the GP), since missing data hides need."""
    if "ethnicity_recorded" not in frame or "medicine_classes_12m" not in frame:
        return None
    thin = (frame["ethnicity_recorded"] < 1) | (
        pd.to_numeric(frame["medicine_classes_12m"], errors="coerce").fillna(0) <= 0
    )
    return pd.Series(np.where(thin, THIN, FULLER), index=frame.index)


def score_deciles(p: np.ndarray) -> np.ndarray:
    """Decile (0 = lowest) of each score; ties share a decile."""
    edges = np.quantile(p, np.linspace(0, 1, DECILES + 1)[1:-1], method="lower")
    return np.searchsorted(edges, p, side="right").astype(np.int64)


def _ratios(n: np.ndarray, ref: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observed and expected need per group, and the adjusted expected. n: (G, D, S, V) counts."""
    v = np.arange(n.shape[-1], dtype=float)
    count = n.sum(-1)  # (G, D, S)
    total = (n * v).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ref_d = total[ref].sum(-1) / count[ref].sum(-1)  # (D,)
        ref_ds = total[ref] / count[ref]  # (D, S)
        cd = count.sum(-1)  # (G, D)
        ok_d = np.isfinite(ref_d)[None, :]
        observed = np.where(ok_d, total.sum(-1), 0).sum(-1)
        expected = np.where(ok_d, cd * np.nan_to_num(ref_d)[None, :], 0).sum(-1)
        ok_ds = np.isfinite(ref_ds)[None]
        obs_adj = np.where(ok_ds, total, 0).sum((-1, -2))
        exp_adj = np.where(ok_ds, count * np.nan_to_num(ref_ds)[None], 0).sum((-1, -2))
        return observed / expected, obs_adj / exp_adj, observed


def _interval(draws: np.ndarray, point: float, level: float) -> tuple[float | None, float | None]:
    return ratio_interval(draws, point if np.isfinite(point) else None, level)


def need_audit(frame: pd.DataFrame, p: np.ndarray, cfg: AuditConfig, seed: int) -> list[NeedGroupingResult]:
    """Need-at-equal-score comparisons for every need grouping and measure present in `frame` (usable rows,
    aligned with the scores `p`)."""
    frame = frame.copy()
    if "thin_record" not in frame:
        thin = thin_record(frame)
        if thin is not None:
            frame["thin_record"] = thin
    measures = [m for m in NEED_MEASURES if m.column in frame]
    groupings = [g for g in NEED_GROUPINGS if g.column in frame]
    if not measures or not groupings:
        return []
    decile = score_deciles(p)
    strata, n_strata = (
        (pd.factorize(frame["stratum"].astype("string").fillna("unknown"))[0], None)
        if "stratum" in frame
        else (np.zeros(len(frame), np.int64), None)
    )
    n_strata = int(strata.max()) + 1 if strata.size else 1
    rng = np.random.default_rng(seed)
    out: list[NeedGroupingResult] = []
    for g in groupings:
        codes, names = pd.factorize(frame[g.column].astype("string").fillna("Unknown"), sort=True)
        names = [str(x) for x in names]
        sizes = np.bincount(codes, minlength=len(names))
        small = sizes < cfg.min_group_size
        ref, _ = reference_index(names, cfg.references.get(g.name), sizes, small)
        mine = [m for m in measures if g.measures is None or m.name in g.measures]
        judged = max(1, int((~small).sum() - (not small[ref])) * len(mine))
        level = 1 - (1 - cfg.level) / judged if cfg.simultaneous else cfg.level
        for m in mine:
            value = np.clip(np.nan_to_num(pd.to_numeric(frame[m.column], errors="coerce").to_numpy(float)), 0, CAP)
            shape = (len(names), DECILES, n_strata, CAP + 1)
            keys = ((codes.astype(np.int64) * DECILES + decile) * n_strata + strata) * (CAP + 1) + np.rint(
                value
            ).astype(np.int64)
            n = np.bincount(keys, minlength=int(np.prod(shape))).astype(float).reshape(shape)
            ratio, adjusted, _ = _ratios(n, ref)
            flat = n.ravel()
            nz = np.flatnonzero(flat)
            d_ratio, d_adj, d_mean = [], [], []
            vv = np.arange(CAP + 1, dtype=float)
            for _ in range(cfg.bootstrap_draws):
                draw = np.zeros(flat.size)
                draw[nz] = rng.poisson(flat[nz])
                draw = draw.reshape(shape)
                r, a, _ = _ratios(draw, ref)
                d_ratio.append(r)
                d_adj.append(a)
                with np.errstate(divide="ignore", invalid="ignore"):
                    d_mean.append((draw.sum(2) * vv).sum(-1) / draw.sum((2, 3)))
            d_ratio, d_adj, d_mean = np.vstack(d_ratio), np.vstack(d_adj), np.stack(d_mean)
            comparisons = []
            with np.errstate(divide="ignore", invalid="ignore"):
                mean_by = (n.sum(2) * vv).sum(-1) / n.sum((2, 3))  # (G, D)
                overall = (n * vv).sum((1, 2, 3)) / n.sum((1, 2, 3))
            for i, name in enumerate(names):
                if i == ref:
                    continue
                r, a = _num(ratio[i]), _num(adjusted[i])
                ci = _interval(d_ratio[:, i], ratio[i], level)
                aci = _interval(d_adj[:, i], adjusted[i], level)
                status = _status(True, cfg.tolerance, bool(small[i]), r, ci, a, n_strata > 1)
                if status == "flag" and r is not None and r < 1:
                    status = "less need at equal score"  # over-served, not under-served: shown, not flagged
                elif status == "uncertain" and r is not None and r < 1:
                    status = "within tolerance" if r >= cfg.tolerance[0] else "less need at equal score"
                comparisons.append(
                    Comparison(
                        grouping=g.name,
                        group=name,
                        metric=m.name,
                        value=_num(overall[i]),
                        reference_group=names[ref],
                        reference_value=_num(overall[i] / ratio[i]) if r else None,
                        ratio=r,
                        ratio_ci=ci,
                        ratio_ci_level=level,
                        difference=_num(overall[i] - overall[i] / ratio[i]) if r else None,
                        adjusted_ratio=a,
                        adjusted_ratio_ci=aci,
                        status=status,
                    )
                )
            cells = []
            for i, name in enumerate(names):
                for d in range(DECILES):
                    count = int(n[i, d].sum())
                    lo, hi = _percentiles(d_mean[:, i, d], cfg.level)
                    cells.append(
                        NeedCell(
                            group=name, decile=d + 1, n=count, mean=MetricValue(value=_num(mean_by[i, d]), ci=(lo, hi))
                        )
                    )
            out.append(
                NeedGroupingResult(
                    name=g.name,
                    title=g.title,
                    reference=names[ref],
                    measure=m.name,
                    measure_title=m.title,
                    judged_level=level,
                    comparisons=comparisons,
                    deciles=cells,
                )
            )
    return out


def _percentiles(draws: np.ndarray, level: float) -> tuple[float | None, float | None]:
    d = draws[np.isfinite(draws)]
    if d.size < 10:
        return None, None
    lo, hi = np.quantile(d, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)
