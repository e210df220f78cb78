"""Effect estimators on a matched panel, pure functions of data frames.

A panel row is one person at one enrolment month (`cohort`): `treated` (1 enrolled, 0 comparison), the match
set `set_id` (the enrolled person's; a comparison person used by several sets has a row in each), `weight`
(1 for the enrolled; 1/k for each of the k comparison people of a set) and, per outcome, events and person-years
before (`pre_`) and after (`post_`) the enrolment date. Rates are events per person-year, pooled over people
(sum of events / sum of person-years). Relative effects compare with the enrolled group's estimated
counterfactual: (observed - counterfactual) / counterfactual.

A comparison person enrolled later, within their 12 months of follow-up, has the programme's effect in part of
that follow-up (`post_<outcome>_crossed`: their events on and after their own enrolment month, see
`crossover`). Left as it is, the comparison is "enrol now against enrol maybe later", and the estimate is diluted
towards no effect (by about 0.035 of a true -0.28 in 50,000-person synthetic ICSs, where a quarter of the
comparison weight is enrolled within the year: a bias that does not shrink with size). The difference in
differences therefore scales those events back to what they would have been without the programme under the same
relative effect (a g-estimate under a constant relative effect: `_did` solves r = DiD(comparisons corrected by r)),
so the estimate is of enrolment against no enrolment, the generator's truth and the question a programme asks.
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
        return {
            "difference": self.difference,
            "relative": self.relative,
            "difference_ci": list(self.difference_ci),
            "relative_ci": list(self.relative_ci),
        }


def _rate(events: np.ndarray, years: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return events / years


def row_values(panel: pd.DataFrame, outcome: str) -> np.ndarray:
    """Per panel row, its weighted contribution to (enrolled pre events, pre years, post events, post years, then
    the same for the comparison people, then the comparison people's post events on and after their own
    enrolment, 0 without a `post_<outcome>_crossed` column), shape (rows, 9); the column sums are the pooled
    quantities."""
    w = panel["weight"].to_numpy(float)
    cols = []
    for arm in (1, 0):
        mask = (panel["treated"].to_numpy() == arm).astype(float) * w
        for part in ("pre", "post"):
            cols.append(mask * panel[f"{part}_{outcome}"].to_numpy(float))
            cols.append(mask * panel[f"{part}_years"].to_numpy(float))
    crossed = f"post_{outcome}_crossed"  # comparison rows only (`mask` is the comparison arm's weight here)
    cols.append(mask * panel[crossed].to_numpy(float) if crossed in panel else np.zeros(len(panel)))
    return np.column_stack(cols)


def _units(panel: pd.DataFrame) -> np.ndarray:
    """The resampling unit of each row: the person (a comparison person used by several match sets, or at
    several months, is one unit), else the match set."""
    key = panel["person_id"] if "person_id" in panel else panel["set_id"]
    return pd.factorize(key)[0]


def _before_after(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pre, post = _rate(s[..., 0], s[..., 1]), _rate(s[..., 2], s[..., 3])
    return post - pre, _rate(post, pre) - 1


def _did_not_now(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Difference in differences with the comparison people's events as observed: enrol now against not now
    (some comparison people enrolled within the year), diluted towards no effect."""
    t_pre, t_post = _rate(s[..., 0], s[..., 1]), _rate(s[..., 2], s[..., 3])
    c_pre, c_post = _rate(s[..., 4], s[..., 5]), _rate(s[..., 6], s[..., 7])
    diff = (t_post - t_pre) - (c_post - c_pre)
    return diff, _rate(diff, t_post - diff)


CROSSED_ITERATIONS = 60


def _did(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Difference in differences of enrolment against no enrolment: the comparison people's events after their own
    enrolment (column 8) divided by (1 + r), r the relative effect, solved by fixed-point iteration (a contraction:
    those events are a small part of the comparison's). Without such events it is `_did_not_now`."""
    diff, rel = _did_not_now(s)
    crossed = s[..., 8] if s.shape[-1] > 8 else 0.0
    if not np.any(crossed):
        return diff, rel
    t_pre, t_post = _rate(s[..., 0], s[..., 1]), _rate(s[..., 2], s[..., 3])
    c_pre = _rate(s[..., 4], s[..., 5])
    for _ in range(CROSSED_ITERATIONS):
        scale = 1 / np.maximum(1 + rel, 0.05)  # a relative effect of -95% or beyond is not credible to scale by
        c_post = _rate(s[..., 6] + crossed * (scale - 1), s[..., 7])
        diff = (t_post - t_pre) - (c_post - c_pre)
        rel = _rate(diff, t_post - diff)
    return diff, rel


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
    """Per outcome, the pooled sums (draws, 9) of the same Poisson person bootstrap as `_estimate` (same seed, same
    draws), but with every row's weight re-derived from the resample by `weigh(multiplicity per row)` (e.g.
    `matching.Reweigh`: the entropy balancing done again), so the interval carries the weights' uncertainty."""
    units = _units(panel)
    n_units = int(units.max()) + 1 if units.size else 0
    counts = np.random.default_rng(seed).poisson(1.0, size=(draws, n_units))
    base = {o: row_values(panel.assign(weight=1.0), o) for o in outcomes}
    out = {o: np.empty((draws, base[o].shape[1])) for o in outcomes}
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


def difference_in_differences(
    panel: pd.DataFrame, outcome: str, draws: int = 0, seed: int = 0, sums: np.ndarray | None = None
) -> Estimate:
    """Change in the enrolled group's rate minus the change in the matched comparison group's rate (intervals
    from `sums` of `bootstrap_sums` when given, which re-derives the weights in each resample)."""
    if sums is not None:
        return from_sums(_did, panel, outcome, sums)
    return _estimate(_did, panel, outcome, draws, seed)


def difference_in_differences_not_now(panel: pd.DataFrame, outcome: str, draws: int = 0, seed: int = 0) -> Estimate:
    """Difference in differences with the comparison people's events as observed (enrol now against not now),
    shown beside the estimate to show the dilution the crossover correction removes."""
    return _estimate(_did_not_now, panel, outcome, draws, seed)


def by_group(
    panel: pd.DataFrame, group: pd.Series, outcome: str, draws: int = 0, seed: int = 0, min_sets: int = 1
) -> dict[str, tuple[int, Estimate]]:
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


def _moments(values: np.ndarray, group: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """Mean and sample variance (n - 1, as pandas) of `values` in `group`; when `group` is most of the rows and
    with `other` makes all of them, from the sums of all the rows less those of `other` (no copy of the many)."""
    n = int(group.sum())
    if n < values.size // 2 or not (group | other).all():
        v = values[group]
        return (float(v.mean()) if n else float("nan")), (float(v.var(ddof=1)) if n > 1 else float("nan"))
    rest = values[other]
    total, squares = float(values.sum()) - float(rest.sum()), float(values @ values) - float(rest @ rest)
    mean = total / n
    return mean, (max(squares - total * mean, 0.0) / (n - 1) if n > 1 else float("nan"))


def standardised_differences(
    frame: pd.DataFrame, covariates: list[str], weight: str | None = None, reference: pd.DataFrame | None = None
) -> dict[str, float]:
    """Standardised mean difference of each covariate, enrolled minus comparison (weighted if `weight`), over the
    pooled standard deviation of `reference` (default: `frame`), so before and after matching share a scale."""
    ref = frame if reference is None else reference
    # column by column on arrays, the comparison group's moments as the whole's less the enrolled's: the
    # reference may be the whole pool (millions of rows), not to be copied
    t, c = (frame["treated"] == 1).to_numpy(), (frame["treated"] == 0).to_numpy()
    rt, rc = (ref["treated"] == 1).to_numpy(), (ref["treated"] == 0).to_numpy()
    wt = None if weight is None else frame[weight].to_numpy(float)[t]
    wc = None if weight is None else frame[weight].to_numpy(float)[c]
    out = {}
    for col in covariates:
        pooled = ref[col].to_numpy(float)
        values = pooled if frame is ref else frame[col].to_numpy(float)
        (ref_t, var_t), (ref_c, var_c) = _moments(pooled, rt, rc), _moments(pooled, rc, rt)
        sd = np.sqrt((var_t + var_c) / 2)
        if weight is None:
            mean_t, mean_c = (ref_t, ref_c) if frame is ref else (_moments(values, t, c)[0], _moments(values, c, t)[0])
        else:
            mean_t, mean_c = np.average(values[t], weights=wt), np.average(values[c], weights=wc)
        diff = mean_t - mean_c
        out[col] = float(diff / sd) if sd > 0 else 0.0
    return out
