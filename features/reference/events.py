"""Event features on pandas: each source row is paired with its person's cohort rows, kept if it counts for the
feature, and aggregated per cohort row. Written from the definitions' documented meaning, not from the SQL.

Per cohort row (person, index date) an event counts when it is dated before the index date (by calendar day),
inside the window (`index date - N days <= day`), and meets every filter. Bed-days instead take each spell's
days inside both the window and the time before the index date (an open or late discharge ends at the index
date); `active_at_index` takes intervals that started before the index date and have not ended by it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.definitions.model import EventFeature, Filter
from features.reference.expressions import evaluate

DAY = np.timedelta64(1, "D")


def paired(source: pd.DataFrame, cohort: pd.DataFrame) -> pd.DataFrame:
    """Every source row with every cohort row of its person: `_row` (the cohort row) and `_idx` (its date)."""
    rows = cohort[["person_id"]].assign(_row=np.arange(len(cohort)), _idx=cohort["index_date"].to_numpy())
    return source.merge(rows, on="person_id", how="inner")


def day_of(values: pd.Series) -> pd.Series:
    """Calendar day (times dropped) as datetime64."""
    return pd.to_datetime(values).dt.normalize()


def _matches(f: Filter, values: pd.Series) -> np.ndarray:
    present = values.notna().to_numpy()
    if f.op == "in":
        hit = values.isin(f.values).to_numpy()
    elif f.op == "prefix":
        text = values.astype(object).where(values.notna(), "").astype(str)
        hit = np.zeros(len(values), dtype=bool)
        for p in f.values:
            hit |= text.str.startswith(str(p)).to_numpy()
    elif f.op == "between":
        lo, hi = f.values
        hit = ((values >= lo) & (values <= hi)).fillna(False).to_numpy(dtype=bool)
    else:
        hit = (values == f.values[0]).fillna(False).to_numpy(dtype=bool)
    return hit & present


def feature_values(f: EventFeature, events: pd.DataFrame, rows: int) -> pd.Series:
    """The feature for cohort rows 0..rows-1, from `events` (a source `paired` with the cohort); the
    feature's default (missing when None) where no event counts."""
    idx = pd.to_datetime(events["_idx"])
    day = day_of(events[f.date])
    keep = (day < idx).to_numpy()
    for w in f.where:
        keep &= _matches(w, events[w.column])
    window_start = None if f.window_days is None else idx - f.window_days * DAY
    spell_days = None
    if f.aggregation == "bed_days":
        end = day_of(events[f.end]).fillna(idx).where(lambda e: e < idx, idx)
        start = day if window_start is None else day.where(day > window_start, window_start)
        keep &= (end > start).to_numpy()
        spell_days = (end - start) / DAY
    elif window_start is not None:
        keep &= (day >= window_start).to_numpy()
    if f.aggregation == "active_at_index":
        ended = day_of(events[f.end])
        keep &= (ended.isna() | (ended >= idx)).to_numpy()
    kept = events.loc[keep]
    groups = kept["_row"].to_numpy()
    value = None if f.value is None else evaluate(f.value, kept)
    result = _aggregate(f, kept, groups, value, day[keep], idx[keep], None if spell_days is None else spell_days[keep])
    result = result.reindex(range(rows))
    if f.default is not None:
        result = result.fillna(f.default)
    return result


def _numeric(value: pd.Series) -> pd.Series:
    return pd.to_numeric(value, errors="raise").astype("float64")


def _aggregate(
    f: EventFeature,
    kept: pd.DataFrame,
    groups: np.ndarray,
    value: pd.Series | None,
    day: pd.Series,
    idx: pd.Series,
    spell_days: pd.Series | None,
) -> pd.Series:
    by = pd.Series(groups, index=kept.index)
    match f.aggregation:
        case "count":
            return by.value_counts().astype("float64")
        case "exists" | "active_at_index":
            return pd.Series(1.0, index=pd.unique(groups))
        case "count_distinct":
            return value.groupby(by).nunique(dropna=True).astype("float64")
        case "distinct_days":
            return day.groupby(by).nunique().astype("float64")
        case "sum":
            return _numeric(value).groupby(by).sum(min_count=1)
        case "mean":
            return _numeric(value).groupby(by).mean()
        case "std":
            return _numeric(value).groupby(by).std(ddof=1)
        case "min":
            return _numeric(value).groupby(by).min()
        case "max":
            return _numeric(value).groupby(by).max()
        case "slope":
            return _slope(_numeric(value), (day - idx) / DAY, by)
        case "last":
            return _last(value, day, by)
        case "days_since_last":
            latest = day.groupby(by).max()
            first_idx = idx.groupby(by).first()
            return ((first_idx - latest) / DAY).astype("float64")
        case "bed_days":
            return spell_days.groupby(by).sum(min_count=1)
    raise ValueError(f"the reference engine has no aggregation {f.aggregation}")


def _slope(y: pd.Series, x: pd.Series, by: pd.Series) -> pd.Series:
    """Least-squares slope of y on x (days) per group, over pairs with y present; missing unless x varies."""
    present = y.notna()
    y, x, by = y[present], x[present].astype("float64"), by[present]
    dx = x - x.groupby(by).transform("mean")
    dy = y - y.groupby(by).transform("mean")
    sxx = (dx * dx).groupby(by).sum()
    sxy = (dx * dy).groupby(by).sum()
    return (sxy / sxx).where(sxx > 0)


def _last(value: pd.Series, day: pd.Series, by: pd.Series) -> pd.Series:
    """The value on the latest day with a value present (ties on that day: the largest value)."""
    frame = pd.DataFrame({"g": by, "day": day, "v": value}).dropna(subset=["v"])
    numeric = pd.api.types.is_numeric_dtype(frame["v"])
    if numeric:
        frame["v"] = frame["v"].astype("float64")
    latest = frame.sort_values(["g", "day", "v"], kind="mergesort").groupby("g").tail(1)
    return pd.Series(latest["v"].to_numpy(), index=latest["g"].to_numpy())
