"""Effect estimators on a matched panel, pure functions of data frames.

A panel row is one person at one enrolment month (`cohort`): `treated` (1 enrolled, 0 comparison), the match
set `set_id` (the enrolled person's; a comparison person used by several sets has a row in each), `weight`
(1 for the enrolled; 1/k for each of the k comparison people of a set) and, per outcome, events and person-years
before (`pre_`) and after (`post_`) the enrolment date. Rates are events per person-year, pooled over people
(sum of events / sum of person-years). Relative effects compare with the enrolled group's estimated
counterfactual: (observed - counterfactual) / counterfactual.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Estimate:
    """An effect: difference in events per person-year and relative change, with 95% bootstrap intervals."""

    difference: float
    relative: float
    difference_ci: tuple[float, float] = (float("nan"), float("nan"))
    relative_ci: tuple[float, float] = (float("nan"), float("nan"))

    def as_dict(self) -> dict:
        return {"difference": self.difference, "relative": self.relative,
                "difference_ci": list(self.difference_ci), "relative_ci": list(self.relative_ci)}


def _rate(events: np.ndarray, years: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return events / years


def row_values(panel: pd.DataFrame, outcome: str) -> np.ndarray:
    """Per panel row, its weighted contribution to (enrolled pre events, pre years, post events, post years, then
    the same for the comparison people), shape (rows, 8); the column sums are the pooled quantities."""
    w = panel["weight"].to_numpy(float)
    cols = []
    for arm in (1, 0):
        mask = (panel["treated"].to_numpy() == arm).astype(float) * w
        for part in ("pre", "post"):
            cols.append(mask * panel[f"{part}_{outcome}"].to_numpy(float))
            cols.append(mask * panel[f"{part}_years"].to_numpy(float))
    return np.column_stack(cols)


def _units(panel: pd.DataFrame) -> np.ndarray:
    """The resampling unit of each row: the person (a comparison person used by several match sets, or at
    several months, is one unit), else the match set."""
    key = panel["person_id"] if "person_id" in panel else panel["set_id"]
    return pd.factorize(key)[0]


def _before_after(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pre, post = _rate(s[..., 0], s[..., 1]), _rate(s[..., 2], s[..., 3])
    return post - pre, _rate(post, pre) - 1


def _did(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t_pre, t_post = _rate(s[..., 0], s[..., 1]), _rate(s[..., 2], s[..., 3])
    c_pre, c_post = _rate(s[..., 4], s[..., 5]), _rate(s[..., 6], s[..., 7])
    diff = (t_post - t_pre) - (c_post - c_pre)
    return diff, _rate(diff, t_post - diff)


def _estimate(fn, panel: pd.DataFrame, outcome: str, draws: int, seed: int) -> Estimate:
    """Point estimate, and 95% percentile intervals from a Poisson bootstrap over people (each person's rows
    count Poisson(1) times per draw), so that a comparison person reused by many sets varies as one."""
    values = row_values(panel, outcome)
    diff, rel = fn(values.sum(axis=0))
    units = _units(panel)
    n_units = int(units.max()) + 1 if units.size else 0
    if draws <= 0 or n_units < 2:
        return Estimate(float(diff), float(rel))
    per_unit = np.zeros((n_units, values.shape[1]))
    np.add.at(per_unit, units, values)
    counts = np.random.default_rng(seed).poisson(1.0, size=(draws, n_units))
    d, r = fn(counts @ per_unit)
    ci = lambda x: (float(np.nanpercentile(x, 2.5)), float(np.nanpercentile(x, 97.5)))  # noqa: E731
    return Estimate(float(diff), float(rel), ci(d), ci(r))


def bootstrap_sums(panel: pd.DataFrame, outcomes, weigh, draws: int, seed: int) -> dict[str, np.ndarray]:
    """Per outcome, the pooled sums (draws, 8) of the same Poisson person bootstrap as `_estimate` (same seed, same
    draws), but with every row's weight re-derived from the resample by `weigh(multiplicity per row)` (e.g.
    `matching.Reweigh`: the entropy balancing done again), so the interval carries the weights' uncertainty."""
    units = _units(panel)
    n_units = int(units.max()) + 1 if units.size else 0
    counts = np.random.default_rng(seed).poisson(1.0, size=(draws, n_units))
    base = {o: row_values(panel.assign(weight=1.0), o) for o in outcomes}
    out = {o: np.empty((draws, 8)) for o in outcomes}
    for b in range(draws):
        w = weigh(counts[b][units])
        for o in outcomes:
            out[o][b] = w @ base[o]
    return out


def from_sums(fn, panel: pd.DataFrame, outcome: str, sums: np.ndarray) -> Estimate:
    """The point estimate of `panel` with 95% percentile intervals from bootstrap `sums` (`bootstrap_sums`)."""
    diff, rel = fn(row_values(panel, outcome).sum(axis=0))
    d, r = fn(sums)
    ci = lambda x: (float(np.nanpercentile(x, 2.5)), float(np.nanpercentile(x, 97.5)))  # noqa: E731
    return Estimate(float(diff), float(rel), ci(d), ci(r))


def before_after(panel: pd.DataFrame, outcome: str, draws: int = 0, seed: int = 0) -> Estimate:
    """Naive before-after on the enrolled alone: post rate minus pre rate (biased by regression to the mean
    when people are enrolled because of recent use)."""
    return _estimate(_before_after, panel, outcome, draws, seed)


def difference_in_differences(panel: pd.DataFrame, outcome: str, draws: int = 0, seed: int = 0,
                              sums: np.ndarray | None = None) -> Estimate:
    """Change in the enrolled group's rate minus the change in the matched comparison group's rate (intervals
    from `sums` of `bootstrap_sums` when given, which re-derives the weights in each resample)."""
    if sums is not None:
        return from_sums(_did, panel, outcome, sums)
    return _estimate(_did, panel, outcome, draws, seed)


def by_group(panel: pd.DataFrame, group: pd.Series, outcome: str, draws: int = 0, seed: int = 0,
             min_sets: int = 1) -> dict[str, tuple[int, Estimate]]:
    """Difference-in-differences within groups of match sets (the enrolled person's group, e.g. ethnicity);
    `group` is indexed by `set_id`. Groups with fewer than `min_sets` enrolled people are left out."""
    out = {}
    set_group = panel["set_id"].map(group)
    for name in sorted(set_group.dropna().unique()):
        part = panel[set_group == name]
        n = int(part["set_id"].nunique())
        if n >= min_sets:
            out[str(name)] = (n, difference_in_differences(part, outcome, draws, seed))
    return out


def standardised_differences(frame: pd.DataFrame, covariates: list[str], weight: str | None = None,
                             reference: pd.DataFrame | None = None) -> dict[str, float]:
    """Standardised mean difference of each covariate, enrolled minus comparison (weighted if `weight`), over the
    pooled standard deviation of `reference` (default: `frame`), so before and after matching share a scale."""
    ref = frame if reference is None else reference
    t, c = frame[frame["treated"] == 1], frame[frame["treated"] == 0]
    rt, rc = ref[ref["treated"] == 1], ref[ref["treated"] == 0]
    wc = np.ones(len(c)) if weight is None else c[weight].to_numpy(float)
    wt = np.ones(len(t)) if weight is None else t[weight].to_numpy(float)
    out = {}
    for col in covariates:
        sd = np.sqrt((rt[col].var() + rc[col].var()) / 2)
        diff = np.average(t[col], weights=wt) - np.average(c[col], weights=wc)
        out[col] = float(diff / sd) if sd > 0 else 0.0
    return out
