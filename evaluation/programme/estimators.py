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

Intervals: a Poisson bootstrap over people (a comparison person reused by many sets, or at many months, varies as
one), widened to the variance two-way clustered by person and by enrolment month (`_two_way`): the people of one
month share one draw of the programme's selection and one follow-up calendar. In synthetic ICSs with no effect
the person bootstrap alone was narrower than the estimates' scatter between ICSs, while splitting one ICS's people
in two gave halves whose disagreement it did predict: the excess is shared by the people of an ICS, a part no
resampling of people can see; resampling enrolment months sees the part of it that varies between months.
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


def _units(panel: pd.DataFrame, scheme: str = "person") -> np.ndarray:
    """The resampling unit of each row. `person`: the person (a comparison person used by several match sets, or
    at several months, is one unit), else the match set; `month`: the enrolment month (`cohort`); `cell`: the
    person at one month (the intersection of the two, for the two-way variance of `_two_way`)."""
    key = panel["person_id"] if "person_id" in panel else panel["set_id"]
    if scheme == "person":
        return pd.factorize(key)[0]
    month = pd.factorize(panel["cohort"])[0] if "cohort" in panel else np.zeros(len(panel), np.int64)
    if scheme == "month":
        return month
    return pd.factorize(pd.factorize(key)[0].astype(np.int64) * (int(month.max(initial=0)) + 1) + month)[0]


def _months(panel: pd.DataFrame) -> int:
    return int(panel["cohort"].nunique()) if "cohort" in panel else 1


TWO_WAY = ("month", "cell")  # the extra resamplings of the two-way interval, each with its own random stream


def _two_way(point: float, person: np.ndarray, month=None, cell=None, months: int = 0) -> tuple[float, float]:
    """95% interval from bootstrap draws of an estimate. Person draws alone: their percentiles. With draws
    resampling enrolment months and person-months too, the variance is two-way clustered by person and by month
    (Cameron, Gelbach and Miller: V = V_person + V_month - V_person-month, the month term times G / (G - 1) for
    G `months`, the usual few-cluster correction; never below V_person), and the
    percentile interval is widened about the estimate by sqrt(V / V_person). People enrolled in one month share
    that month's selection (its cut-off, who was offered before, the season) and its follow-up calendar, so their
    errors correlate, which a person bootstrap alone leaves out (too narrow in synthetic ICSs with no effect)."""
    lo, hi = float(np.nanpercentile(person, 2.5)), float(np.nanpercentile(person, 97.5))
    if month is None or cell is None:
        return lo, hi
    v_person = float(np.nanvar(person))
    if not v_person > 0:
        return lo, hi
    few = months / (months - 1) if months > 1 else 1.0
    v = max(v_person + few * float(np.nanvar(month)) - float(np.nanvar(cell)), v_person)
    k = float(np.sqrt(v / v_person))
    return point + k * (lo - point), point + k * (hi - point)


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
    """Point estimate, and 95% intervals from a Poisson bootstrap over people (each person's rows count Poisson(1)
    times per draw), so that a comparison person reused by many sets varies as one; with two or more enrolment
    months, widened to the two-way (person and month) variance of `_two_way`."""
    values = row_values(panel, outcome)
    diff, rel = fn(values.sum(axis=0))
    if draws <= 0 or int(_units(panel).max(initial=0)) < 1:
        return Estimate(float(diff), float(rel))
    schemes = ("person", *TWO_WAY) if _months(panel) > 1 else ("person",)
    out = []
    for i, scheme in enumerate(schemes):
        units = _units(panel, scheme)
        per_unit = np.zeros((int(units.max()) + 1, values.shape[1]))
        np.add.at(per_unit, units, values)
        rng = np.random.default_rng(seed if i == 0 else [seed, i])
        out.append(fn(rng.poisson(1.0, size=(draws, per_unit.shape[0])) @ per_unit))
    d = _two_way(float(diff), *[o[0] for o in out], months=_months(panel))
    r = _two_way(float(rel), *[o[1] for o in out], months=_months(panel))
    return Estimate(float(diff), float(rel), d, r)


def bootstrap_sums(
    panel: pd.DataFrame, outcomes, weigh, draws: int, seed: int, scheme: str = "person"
) -> dict[str, np.ndarray]:
    """Per outcome, the pooled sums (draws, 9) of the same Poisson bootstrap as `_estimate` (same seed, same
    draws; `scheme` the resampling unit of `_units`, each with `_estimate`'s stream), but with every row's weight
    re-derived from the resample by `weigh(multiplicity per row)` (e.g. `matching.Reweigh`: the entropy balancing
    done again), so the interval carries the weights' uncertainty."""
    units = _units(panel, scheme)
    n_units = int(units.max()) + 1 if units.size else 0
    stream = seed if scheme == "person" else [seed, 1 + TWO_WAY.index(scheme)]
    counts = np.random.default_rng(stream).poisson(1.0, size=(draws, n_units))
    outcomes = list(outcomes)
    base = np.hstack([row_values(panel.assign(weight=1.0), o) for o in outcomes])  # (rows, 9 per outcome)
    sums = np.empty((draws, base.shape[1]))
    chunk = max(1, min(draws, 4_000_000 // max(len(units), 1)))  # a block of draws' weights, at most ~32 MB
    block = np.empty((chunk, len(units)))
    for start in range(0, draws, chunk):
        stop = min(start + chunk, draws)
        for b in range(start, stop):
            block[b - start] = weigh(counts[b][units])
        sums[start:stop] = block[: stop - start] @ base  # one matrix product a block, not one per draw and outcome
    return {o: sums[:, 9 * i : 9 * (i + 1)] for i, o in enumerate(outcomes)}


def from_sums(
    fn, panel: pd.DataFrame, outcome: str, sums: np.ndarray, two_way: tuple[np.ndarray, np.ndarray] | None = None
) -> Estimate:
    """The point estimate of `panel` with 95% intervals from bootstrap `sums` (`bootstrap_sums`), widened to the
    two-way variance (`_two_way`) when `two_way` holds the month and person-month sums of the same bootstrap."""
    diff, rel = fn(row_values(panel, outcome).sum(axis=0))
    d, r = fn(sums)
    extra = [fn(s) for s in two_way] if two_way is not None else []
    return Estimate(
        float(diff),
        float(rel),
        _two_way(float(diff), d, *[e[0] for e in extra], months=_months(panel)),
        _two_way(float(rel), r, *[e[1] for e in extra], months=_months(panel)),
    )


def before_after(panel: pd.DataFrame, outcome: str, draws: int = 0, seed: int = 0) -> Estimate:
    """Naive before-after on the enrolled alone: post rate minus pre rate (biased by regression to the mean
    when people are enrolled because of recent use)."""
    return _estimate(_before_after, panel, outcome, draws, seed)


def difference_in_differences(
    panel: pd.DataFrame,
    outcome: str,
    draws: int = 0,
    seed: int = 0,
    sums: np.ndarray | None = None,
    two_way: tuple[np.ndarray, np.ndarray] | None = None,
) -> Estimate:
    """Change in the enrolled group's rate minus the change in the matched comparison group's rate (intervals
    from `sums` of `bootstrap_sums` when given, which re-derives the weights in each resample; `two_way`: the month
    and person-month sums of the same, for the two-way interval of `_two_way`)."""
    if sums is not None:
        return from_sums(_did, panel, outcome, sums, two_way)
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
