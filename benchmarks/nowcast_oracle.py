"""The bed nowcast's floor from the synthetic generator's own stay distributions (used by `benchmarks.nowcast`).

The benchmark's "noise floor" is the spread the nowcast would still have were its own fitted model exact. This is
the floor of any method at all on the synthetic ICS: each patient in a bed tonight leaves tomorrow with the chance
the generator itself gives (`features.synthetic.tables`: an emergency stay is floor(exp(N(mu, 1))) days, mu from
age and frailty; other stays of a night or more are geometric with chance 0.35 a day), and tomorrow's admissions
vary as the nowcast's Poisson spread says (`arrivals_sd`). Frailty is not in the warehouse and age is known to
the month, so each patient's chance is taken at the mu in their range (frailty 0-12, age +-1 month) that gives
the *smallest* spread: knowing more about a patient cannot do better than that. Left out: the few stays
lengthened by critical care and deaths in hospital (both only add to the spread of stays this short)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from scipy.stats import norm

ELECTIVE_DAILY_CHANCE = 0.35
MAX_STAY = 150
FRAILTY_RANGE = (0, 12)


def in_bed_spells(warehouse: Path) -> pd.DataFrame:
    """Spells with their site, admission and discharge day (days since 1970; -1 = not yet), age at admission in
    years (from year and month of birth) and whether the admission was an emergency."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute("""
            SELECT s.site_code AS site,
                   CAST(date_diff('day', DATE '1970-01-01', s.admission_date) AS BIGINT) AS adm,
                   CAST(coalesce(date_diff('day', DATE '1970-01-01', s.discharge_date), -1) AS BIGINT) AS dis,
                   (date_diff('day', make_date(p.year_of_birth, coalesce(p.month_of_birth, 7), 15),
                              s.admission_date)) / 365.25 AS age,
                   s.admission_method LIKE '2%' AS emergency
            FROM apc_spells s JOIN patients p USING (person_id)
            WHERE p.year_of_birth IS NOT NULL""").df()
    finally:
        con.close()


def leave_chance(elapsed: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Chance an emergency stay of floor(exp(N(mu, 1))) days (at most 150) that has lasted `elapsed` nights ends
    before the next midnight: P(stay = elapsed + 1 | stay >= elapsed + 1)."""
    k = elapsed + 1

    def at_least(days: np.ndarray) -> np.ndarray:
        return np.where(days > MAX_STAY, 0.0, norm.sf(np.log(np.maximum(days, 1)) - mu))

    still = at_least(k)
    return np.where(still > 0, (still - at_least(k + 1)) / np.where(still > 0, still, 1), 1.0)


def discharge_variance(spells: pd.DataFrame, night: int, grid: int = 9) -> float:
    """Least variance of the number of tonight's patients (in bed at `night`) who leave before the next midnight:
    the sum over patients of p(1-p), each p the generator's chance at the mu in their range giving the least."""
    from features.synthetic.tables import emergency_log_stay

    dis = spells.dis.to_numpy()
    here = spells[(spells.adm.to_numpy() <= night) & ((dis == -1) | (dis > night))]
    elapsed = night - here.adm.to_numpy()
    em = here.emergency.to_numpy(dtype=bool)
    var = np.full(len(here), ELECTIVE_DAILY_CHANCE * (1 - ELECTIVE_DAILY_CHANCE))
    if em.any():
        age = here.age.to_numpy(dtype=float)[em]
        lows = emergency_log_stay(age - 1 / 12, np.full(em.sum(), FRAILTY_RANGE[0]))
        highs = emergency_log_stay(age + 1 / 12, np.full(em.sum(), FRAILTY_RANGE[1]))
        best = np.full(em.sum(), np.inf)
        for w in np.linspace(0, 1, grid):
            p = leave_chance(elapsed[em], lows + w * (highs - lows))
            best = np.minimum(best, p * (1 - p))
        var[em] = best
    return float(var.sum())


def oracle_mae(warehouse: Path, table: pd.DataFrame, ahead: int = 1) -> float:
    """Mean absolute error, at 1 night ahead, of a forecast knowing the generator's own chances: sqrt(2/pi) times
    the spread from tonight's patients' discharges and tomorrow's admissions, averaged over the back-test's sites
    and origins (`table` from `training.nowcast.backtest`)."""
    if ahead != 1:
        raise ValueError("the generator's floor is computed for one night ahead")
    spells = in_bed_spells(warehouse)
    rows = table[table.ahead == 1]
    sites = {site: part for site, part in spells.groupby("site")}
    sds = []
    for (site, origin), part in rows.groupby(["site", "origin"]):
        var = discharge_variance(sites[site], int(origin))
        sds.append(np.sqrt(var + float(part.arrivals_sd.iloc[0]) ** 2))
    return float(np.sqrt(2 / np.pi) * np.mean(sds))
