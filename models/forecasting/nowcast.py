"""A bed nowcast for the next few days from the patients in beds now.

Each spell in a bed at tonight's midnight census has been in for `e` nights; the chance it is still in a bed
k nights later is the product of (1 - discharge hazard) over the nights between, the hazard by nights
elapsed estimated from recent spells (right-censored at the nowcast date) in the spell's group (age band x
emergency or not x diagnosis group), shrunk towards the hazard of all spells, and scaled by the weekday of
the discharge (fewer at weekends). Expected admissions of each kind (emergency or planned: the same weekday's
mean over recent weeks, a public holiday as a Sunday, scaled to the last fortnight's level) add
their chance of staying each night. Midnight census as in `features/series.py`: a spell is in a bed on
night d when admitted on or before d and discharged after d. Days are integers (days since 1970-01-01).

The input is a frame of spells with integer columns `adm`, `dis` (-1 = not discharged) and a `group` label;
only aggregates leave this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

OPEN = -1


@dataclass
class DischargeModel:
    hazards: dict[str, np.ndarray]  # group -> P(leave after night e | in bed night e), e = 0..max_elapsed (last = tail)
    overall: np.ndarray
    weekday: np.ndarray  # discharge-day multipliers, Monday..Sunday
    stay_first_night: float  # P(an admission is in a bed on its first night)
    first_night: dict[str, float] = field(default_factory=dict)  # the same by kind of admission (see `kind_of`)

    def hazard(self, group: str, elapsed: np.ndarray, discharge_day: np.ndarray) -> np.ndarray:
        base = self.hazards.get(group, self.overall)
        h = base[np.minimum(elapsed, base.size - 1)] * self.weekday[(discharge_day + 3) % 7]  # 1970-01-01 a Thursday
        return np.clip(h, 0.0, 1.0)


def _transitions(spells: pd.DataFrame, t: int) -> pd.DataFrame:
    """One row per observed night-to-next-night transition before day t: spell group, nights elapsed, the
    calendar day of the possible discharge, and whether it happened."""
    dis = spells["dis"].to_numpy()
    adm = spells["adm"].to_numpy()
    known = (dis != OPEN) & (dis <= t)
    n = np.where(known, dis - adm, t - adm)  # at-risk nights (events: the last one is the discharge)
    keep = n >= 1
    adm, n, known, groups = adm[keep], n[keep], known[keep], spells["group"].to_numpy()[keep]
    rows = np.repeat(np.arange(n.size), n)
    elapsed = np.arange(rows.size) - np.repeat(np.cumsum(n) - n, n)
    event = known[rows] & (elapsed == n[rows] - 1)
    return pd.DataFrame({"group": groups[rows], "elapsed": elapsed, "day": adm[rows] + elapsed + 1, "event": event})


def fit_discharges(
    spells: pd.DataFrame, t: int, lookback_days: int = 365, max_elapsed: int = 30, shrink: float = 20.0
) -> DischargeModel:
    """Discharge hazards from spells admitted in the `lookback_days` before day t, as known on day t."""
    recent = spells[(spells.adm >= t - lookback_days) & (spells.adm < t)]
    tr = _transitions(recent, t)
    if tr.empty:
        raise ValueError("no spells in the look-back window to estimate lengths of stay from")
    tr["e"] = np.minimum(tr.elapsed.to_numpy(), max_elapsed)
    grid = np.arange(max_elapsed + 1)
    tot = tr.groupby("e").event.agg(["sum", "count"]).reindex(grid, fill_value=0)
    seen = tot["count"].to_numpy() > 0
    raw = np.where(seen, tot["sum"].to_numpy() / np.maximum(tot["count"].to_numpy(), 1), np.nan)
    overall = pd.Series(raw).ffill().fillna(0.5).to_numpy()  # nights never reached: the last hazard seen
    hazards = {}
    for g, part in tr.groupby("group"):
        c = part.groupby("e").event.agg(["sum", "count"]).reindex(grid, fill_value=0)
        n = c["count"].to_numpy() + shrink
        hazards[str(g)] = np.where(n > 0, (c["sum"].to_numpy() + shrink * overall) / np.maximum(n, 1e-12), overall)
    codes, names = pd.factorize(tr.group.to_numpy())
    h = np.stack([hazards[str(g)] for g in names])[codes, tr.e.to_numpy()]
    wd = (tr.day.to_numpy() + 3) % 7
    obs = np.bincount(wd, weights=tr.event.to_numpy(float), minlength=7)
    pred = np.bincount(wd, weights=h, minlength=7)
    weekday = np.where(pred > 0, (obs + 1) / (pred + 1), 1.0)
    adm_recent = recent[recent.adm <= t - 1]
    stays = ((adm_recent.dis == OPEN) | (adm_recent.dis > adm_recent.adm)).to_numpy()
    first = float(np.mean(stays)) if len(adm_recent) else 1.0
    by_kind = {k: float(np.mean(stays[rows])) for k, rows in _split(kind_of(adm_recent["group"].to_numpy()))}
    return DischargeModel(hazards, overall, weekday, first, by_kind)


def kind_of(groups: np.ndarray) -> np.ndarray:
    """The kind of admission from a group label `age|kind|diagnosis` (emergency or other; `all` for labels
    without one). Day cases are planned, so the share of admissions staying the first night differs by kind
    more than by anything else, and the mix changes by weekday."""
    codes, labels = pd.factorize(np.asarray(groups, dtype=object))
    parts = [str(label).split("|") for label in labels]
    kinds = np.array([p[1] if len(p) == 3 else "all" for p in parts], dtype=object)
    return kinds[codes] if labels.size else np.array([], dtype=object)


def _split(kinds: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Each kind (sorted) and the positions holding it (hashed, not sorted: the arrays are long)."""
    codes, names = pd.factorize(kinds)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    rows = {str(n): order[bounds[i] : bounds[i + 1]] for i, n in enumerate(names)}
    return sorted(rows.items())


def census(spells: pd.DataFrame, days: np.ndarray) -> np.ndarray:
    """Midnight census on each day: spells with adm <= d < dis (or not discharged)."""
    adm = np.sort(spells["adm"].to_numpy())
    dis = spells["dis"].to_numpy()
    dis = np.sort(np.where(dis == OPEN, np.iinfo(np.int64).max, dis))
    return np.searchsorted(adm, days, side="right") - np.searchsorted(dis, days, side="right")


def nowcast(
    spells: pd.DataFrame,
    t: int,
    model: DischargeModel,
    admissions: np.ndarray | dict[str, np.ndarray],
    with_sd: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expected midnight census on nights t+1..t+H: the patients in beds tonight who stay, and the expected
    admissions per day (one array, or one per kind of admission) who are in a bed each night. With `with_sd`
    also its standard deviation were the model exact (each stay a coin with its own chance, admissions
    Poisson): the error no method could avoid from the same information; and the part of it from the
    admissions alone (what would remain were every current patient's discharge day known exactly)."""
    by_kind = admissions if isinstance(admissions, dict) else {"": np.asarray(admissions, dtype=float)}
    H = len(next(iter(by_kind.values())))
    stay_mean, stay_var = _stayers(spells, t, model, H)
    new_mean, new_var = _arrivals(t, model, by_kind, H)
    out = stay_mean + new_mean
    return (out, np.sqrt(stay_var + new_var), np.sqrt(new_var)) if with_sd else out


def _stayers(spells: pd.DataFrame, t: int, model: DischargeModel, H: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of how many of the spells in a bed tonight are still in one on nights t+1..t+H."""
    dis = spells["dis"].to_numpy()
    inbed = spells[(spells.adm.to_numpy() <= t) & ((dis == OPEN) | (dis > t))]
    out, var = np.zeros(H), np.zeros(H)
    for g, part in inbed.groupby("group"):
        elapsed = t - part.adm.to_numpy()
        alive = np.ones(elapsed.size)
        for k in range(H):  # leave after night t+k (discharged on day t+k+1)
            alive = alive * (1 - model.hazard(str(g), elapsed + k, np.full(elapsed.size, t + k + 1)))
            out[k] += alive.sum()
            var[k] += (alive * (1 - alive)).sum()
    return out, var


def _arrivals(t: int, model: DischargeModel, by_kind: dict[str, np.ndarray], H: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of the admissions on days t+1..t+H in a bed each night: an admission on day t+j is in
    a bed on night t+k (k >= j) with P(stay first night) x survival; a thinned Poisson count."""
    out, var = np.zeros(H), np.zeros(H)
    for kind, expected in by_kind.items():
        stay = model.first_night.get(kind, model.stay_first_night)
        for j in range(1, H + 1):
            alive = expected[j - 1] * stay
            for k in range(j, H + 1):
                if k > j:
                    alive = alive * (1 - model.hazard("", np.array([k - j - 1]), np.array([t + k]))[0])
                out[k - 1] += alive
                var[k - 1] += alive
    return out, var


def expected_admissions(
    spells: pd.DataFrame, t: int, horizon: int, weeks: int = 8, level_days: int = 14, holidays: np.ndarray | None = None
) -> np.ndarray:
    """Admissions per day for days t+1..t+horizon: the mean on the same weekday over the last `weeks` weeks
    (a public holiday counts as a Sunday, past and future), scaled to the level of the last `level_days` days
    against what that mean expected of them (so a rise or fall in the past fortnight carries forward)."""
    holidays = np.asarray(holidays if holidays is not None else [], dtype=np.int64)
    start = t - 7 * weeks + 1
    adm = spells.adm.to_numpy()
    counts = np.bincount(adm[(adm >= start) & (adm <= t)] - start, minlength=7 * weeks).astype(float)
    kind = _day_kinds(np.arange(start, t + 1), holidays)
    mean = np.array([counts[kind == k].mean() if (kind == k).any() else counts.mean() for k in range(7)])
    expected = mean[kind[-level_days:]].sum()
    level = counts[-level_days:].sum() / expected if expected > 0 else 1.0
    return mean[_day_kinds(np.arange(t + 1, t + horizon + 1), holidays)] * level


def expected_admissions_by_kind(
    spells: pd.DataFrame, t: int, horizon: int, weeks: int = 8, holidays: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """`expected_admissions` for each kind of admission (`kind_of`, or a `kind` column holding it) separately."""
    kinds = spells["kind"].to_numpy() if "kind" in spells else kind_of(spells["group"].to_numpy())
    return {
        k: expected_admissions(spells.iloc[np.sort(rows)], t, horizon, weeks, holidays=holidays)
        for k, rows in _split(kinds)
    }


def _day_kinds(days: np.ndarray, holidays: np.ndarray) -> np.ndarray:
    """Weekday (Monday 0 .. Sunday 6) of each day number (1970-01-01 a Thursday), a holiday as a Sunday."""
    return np.where(np.isin(days, holidays), 6, (days + 3) % 7)
