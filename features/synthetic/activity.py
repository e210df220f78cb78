"""Month-by-month simulation of deaths, moves and hospital, community and mental-health activity.

Emergency admissions follow a person-level hazard (age, conditions from their onset, frailty,
deprivation, an unobserved latent health term) that is raised for a few months after each
admission (self-exciting), with winter, weekday and bank-holiday patterns inside each month.
Because the hazards are known, the true probability of an emergency admission in the 12 months
after an index date is computed exactly for the same discrete process (deaths compete).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from features.sources.codes import CONDITIONS
from features.synthetic import acsc
from features.synthetic.calendar import Calendar
from features.synthetic.population import NEVER, Geography, People, deprivation

# Emergency admissions per person-year by age in England (HES, ~); conditions explain part of it.
_AGE_POINTS = np.array([0, 2, 5, 10, 16, 20, 30, 45, 60, 70, 80, 90, 105])
_AGE_RATES = np.array([0.30, 0.12, 0.06, 0.05, 0.08, 0.11, 0.07, 0.08, 0.13, 0.20, 0.35, 0.55, 0.65])
CONDITION_EFFECT = {
    "hypertension": 0.10,
    "diabetes": 0.40,
    "asthma": 0.25,
    "copd": 0.45,
    "chd": 0.45,
    "heart_failure": 0.90,
    "atrial_fibrillation": 0.35,
    "ckd": 0.50,
    "stroke": 0.40,
    "dementia": 0.75,
    "depression": 0.35,
}
DEATH_EFFECT = {"heart_failure": 0.5, "dementia": 0.5, "copd": 0.35, "ckd": 0.3, "stroke": 0.2}
TARGET_EMERGENCY_RATE = 0.095  # per person-year before self-excitation (~0.11 after)
TARGET_DEATH_RATE = 0.011  # crude, per person-year (England ~9-10 per 1,000)
EXCITE_GAIN, EXCITE_DECAY = 1.5, float(np.exp(-1 / 3.0))
EXCITE_OLD = 2.5
MAX_MONTHLY_RATE = 2.0
LATENT_SD = 0.35


@dataclass
class Activity:
    """Person-level event arrays (person index, day index and attributes) from the simulation."""

    emergency_person: np.ndarray
    emergency_day: np.ndarray
    elective_person: np.ndarray
    elective_day: np.ndarray
    ae_person: np.ndarray
    ae_day: np.ndarray
    op_person: np.ndarray
    op_day: np.ndarray
    community_person: np.ndarray
    community_day: np.ndarray
    mh_person: np.ndarray
    mh_day: np.ndarray
    death_day: np.ndarray  # day index or -1
    truth_emergency: dict[int, tuple[np.ndarray, np.ndarray]]  # index day -> (persons, p_true)
    # index day -> (persons, P(an ACSC emergency admission in 12 months), exacerbations aside)
    truth_acsc: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def excitation(recent: np.ndarray, age: np.ndarray) -> np.ndarray:
    """Hazard multiplier from recent admissions (decayed count), saturating so it cannot explode.

    Older people are far more likely to come back soon after an admission (readmission risk
    climbs with age), an interaction a purely additive model cannot represent."""
    return 1 + (EXCITE_GAIN * 0.6 + EXCITE_OLD * (age >= 75)) * (1 - np.exp(-recent))


class HazardModel:
    """Annual hazards of emergency admission and death for every person at a given day."""

    def __init__(self, people: People, geo: Geography, cal: Calendar):
        self.people = people
        self.shift: tuple[int, np.ndarray, float] | None = None  # (first day, who, log factor)
        self.log_use: np.ndarray | None = None  # an access barrier: log multiplier of hospital use per person
        dep = deprivation(geo.imd_decile[people.lsoa])
        frail = np.log1p(people.frailty.astype(np.float64))
        self.frail, self.dep = frail, dep
        self.static = (
            0.45 * dep + 0.5 * frail + LATENT_SD * people.latent + 0.06 * (people.sex == "M") + 0.15 * people.smoker
        )
        self.cond_beta = np.array([CONDITION_EFFECT[c.key] for c in CONDITIONS])
        self.death_beta = np.array([DEATH_EFFECT.get(c.key, 0.0) for c in CONDITIONS])
        self.death_static = 0.25 * frail + 0.35 * people.latent + 0.25 * dep + 0.2 * (people.sex == "M")
        self.intercept = 0.0
        self.death_intercept = 0.0
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        order = np.argsort(people.onset, axis=1, kind="stable")
        self._onset_sorted = np.take_along_axis(people.onset, order, axis=1)
        zeros = np.zeros((people.n, 1))
        self._cum_em = np.hstack([zeros, np.cumsum(self.cond_beta[order], axis=1)])
        self._cum_death = np.hstack([zeros, np.cumsum(self.death_beta[order], axis=1)])
        # log relative emergency rate by whole year of age (a lookup is much cheaper than interpolating)
        self._age_term = 0.9 * np.log(np.interp(np.minimum(np.arange(111) + 0.5, 104), _AGE_POINTS, _AGE_RATES) / 0.1)
        mid_day = int(cal.days[cal.n_days // 2])
        # calibrate on people registered at mid-history (deaths come later, so the oldest are trimmed)
        alive = (
            (people.age_at(mid_day) >= 0)
            & (people.age_at(mid_day) < 95)
            & (people.reg_start <= mid_day)
            & (people.exit_move > mid_day)
        )
        log_em, death, _k = self.rates(mid_day)
        self.intercept = float(np.log(TARGET_EMERGENCY_RATE / np.exp(log_em)[alive].mean()))
        self.death_intercept = float(np.log(TARGET_DEATH_RATE / death[alive].mean()))
        self._cache.clear()

    def apply_shift(self, first_day: int, who: np.ndarray, factor: float) -> None:
        """From `first_day`, multiply the emergency hazard of `who` by `factor` (after calibration)."""
        self.shift = (first_day, who, float(np.log(factor)))
        self._cache.clear()

    def apply_access_barrier(self, use: np.ndarray) -> None:
        """Multiply everyone's emergency hazard by `use` (1 = no barrier) for the whole history, after calibration:
        the same need, less hospital use."""
        self.log_use = np.log(use)
        self._cache.clear()

    def rates(self, day: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(log annual emergency rate, annual death rate, conditions present) of everyone on `day`,
        cached for a year of months."""
        hit = self._cache.get(day)
        if hit is None:
            # conditions present: count of (sorted) onsets on or before the day, then a lookup of the
            # cumulative effects, instead of a persons x conditions float matrix product every month
            k = (self._onset_sorted <= day).sum(axis=1)
            rows = np.arange(k.size)
            age = np.clip(self.people.age_at(day), 0, 110)
            age_term = self._age_term[age.astype(np.int64)]
            # multimorbidity and frailty in old age compound the risk (not additive on the log scale)
            synergy = 0.3 * (k >= 3) + 0.4 * self.frail * (age >= 75)
            log_em = self.intercept + age_term + self.static + self._cum_em[rows, k] + synergy
            if self.log_use is not None:
                log_em = log_em + self.log_use
            if self.shift is not None and day >= self.shift[0]:
                log_em = log_em + self.shift[1] * self.shift[2]
            lin = self.death_intercept + 0.092 * (age - 80) + self.death_static + self._cum_death[rows, k]
            death = np.exp(lin) + np.where(age < 1, 0.004, 0.0)
            hit = (log_em, death, k)
            if len(self._cache) >= 14:
                self._cache.pop(next(iter(self._cache)))
            self._cache[day] = hit
        return hit

    def log_emergency(self, day: int) -> np.ndarray:
        return self.rates(day)[0]

    def death_rate(self, day: int) -> np.ndarray:
        return self.rates(day)[1]


def simulate_activity(
    people: People,
    geo: Geography,
    cal: Calendar,
    rng: np.random.Generator,
    index_days: list[int],
    shift: tuple[int, np.ndarray, float] | None = None,
    use: np.ndarray | None = None,
    programme=None,
    truth_seed: int = 0,
) -> Activity:
    """Run the monthly simulation; fills `people.death` and `people.exit` and returns events. `shift`
    (first day, who, factor) changes some people's emergency hazard from a day on; `use` (per person, 1 = none)
    scales hospital use (emergency admissions and A&E through the hazard, outpatient and elective activity
    directly) for the same need: an access barrier. Deaths and conditions are unchanged. `programme`
    (features.synthetic.intervention.Programme) enrols people and draws their admissions with a counterfactual.
    `truth_seed` seeds the ACSC truth's own draws (the simulation's stream is untouched)."""
    n = people.n
    hazards = HazardModel(people, geo, cal)
    if shift is not None:
        hazards.apply_shift(*shift)
    if use is not None:
        hazards.apply_access_barrier(use)
    use = np.ones(n) if use is None else use
    w_em, w_el, w_wd = cal.emergency_weights(), cal.elective_weights(), cal.weekday_weights()
    starts = cal.month_start[:-1]
    # share of an annual rate falling in each month, by activity pattern
    mw_em = np.add.reduceat(w_em, starts) / 365.25
    mw_el = np.add.reduceat(w_el, starts) / 365.25
    mw_wd = np.add.reduceat(w_wd, starts) / 365.25
    mw_days = np.diff(cal.month_start) / 365.25

    first = people.reg_start.astype(np.int64) - int(cal.days[0])  # registration as day index
    move = np.where(
        people.exit_move == NEVER, np.iinfo(np.int32).max, people.exit_move.astype(np.int64) - int(cal.days[0])
    )
    death = np.full(n, -1, dtype=np.int64)
    excite = np.zeros(n)
    out: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {
        k: [] for k in ("emergency", "elective", "ae", "op", "community", "mh")
    }
    truth: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    truth_acsc: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    frail2 = people.frailty >= 2
    cond_keys = [c.key for c in CONDITIONS]
    dep_idx, dem_idx = cond_keys.index("depression"), cond_keys.index("dementia")
    dep = deprivation(geo.imd_decile[people.lsoa])

    for m in range(cal.n_months):
        lo, hi = int(cal.month_start[m]), int(cal.month_start[m + 1]) - 1
        day = int(cal.days[lo])
        if day in index_days:
            truth[day] = _truth_emergency(hazards, cal, m, excite, mw_em, mw_days, first, move, death, lo)
            truth_acsc[day] = (
                truth[day][0],
                acsc.truth(
                    hazards,
                    dep,
                    cal,
                    m,
                    excite,
                    mw_em,
                    mw_days,
                    truth[day][0],
                    np.random.default_rng([truth_seed, 23, day]),
                    MAX_MONTHLY_RATE,
                    excitation,
                    EXCITE_DECAY,
                ),
            )
        alive = (death < 0) | (death >= lo)
        exposed = (first <= hi) & (move > lo) & alive & (people.birth <= int(cal.days[hi]))
        idx = np.flatnonzero(exposed)
        # deaths this month
        q = 1 - np.exp(-hazards.death_rate(day)[idx] * mw_days[m])
        dies = rng.random(idx.size) < q
        d_first = np.maximum(first[idx], lo)
        d_day = (d_first + rng.random(idx.size) * (hi - d_first + 1)).astype(np.int64)
        death[idx[dies]] = d_day[dies]
        last = np.where(dies, d_day, np.minimum(move[idx] - 1, hi))
        firsts = np.maximum(first[idx], lo)

        def draw(annual: np.ndarray, month_weight: float, weights: np.ndarray, key: str) -> np.ndarray:
            """Independent Poisson counts per person, drawn as one Poisson total allocated to people in
            proportion to their rates (the same distribution, far cheaper when events are sparse)."""
            rate = np.cumsum(annual * month_weight)
            total = rng.poisson(rate[-1]) if rate.size else 0
            who = np.searchsorted(rate, rng.random(total) * rate[-1], side="right") if total else np.empty(0, np.int64)
            who = np.sort(np.minimum(who, idx.size - 1))
            if who.size:
                days = cal.sample_days(rng, np.full(who.size, m), weights, firsts[who], last[who])
                keep = days <= last[who]
                out[key].append((idx[who][keep].astype(np.int32), days[keep]))
            return np.bincount(who, minlength=idx.size)

        log_em = hazards.log_emergency(day)[idx]
        age = people.age_at(day)[idx]
        em_rate = np.minimum(np.exp(log_em) * excitation(excite[idx], age), MAX_MONTHLY_RATE / max(mw_em[m], 1e-9))
        extra = 0
        if programme is not None:
            cap = MAX_MONTHLY_RATE / max(mw_em[m], 1e-9)
            em_rate, extra = programme.month(
                m,
                day,
                idx,
                recorded_score(hazards, idx, log_em, excite[idx], age),
                log_em,
                em_rate,
                excite,
                excitation,
                cap,
                age,
                firsts,
                last,
                cal,
                w_em,
                mw_em[m],
                out["emergency"],
            )
        n_em = draw(em_rate, mw_em[m], w_em, "emergency") + extra
        excite *= EXCITE_DECAY
        excite[idx] += n_em
        draw(np.clip(0.05 + 0.0045 * np.maximum(age - 18, 0), 0, 0.45) * use[idx], mw_el[m], w_el, "elective")
        rel = np.exp(0.5 * (log_em - hazards.intercept)) * np.sqrt(use[idx])  # A&E: the barrier in full
        draw(0.16 * rel, mw_em[m], w_em, "ae")
        n_cond = hazards.rates(day)[2][idx]
        draw((0.45 + 0.3 * n_cond + 0.008 * np.maximum(age - 40, 0)) * use[idx], mw_wd[m], w_wd, "op")
        draw(
            0.03 + 1.6 * frail2[idx] * (age >= 65) + 0.6 * (age >= 80) + 0.8 * (n_cond >= 4),
            mw_wd[m],
            w_wd,
            "community",
        )
        has_dep = people.onset[idx, dep_idx] <= day
        has_dem = people.onset[idx, dem_idx] <= day
        draw(0.015 + 0.9 * has_dep * (0.6 + dep[idx]) + 0.6 * has_dem, mw_wd[m], w_wd, "mh")

    def cat(key: str) -> tuple[np.ndarray, np.ndarray]:
        if not out[key]:
            return np.empty(0, np.int32), np.empty(0, np.int32)
        p, d = zip(*out[key])
        return np.concatenate(p), np.concatenate(d)

    people.death = np.where(death >= 0, death + int(cal.days[0]), NEVER).astype(np.int32)
    people.exit = np.minimum(people.death, people.exit_move)
    (ep, ed), (lp, ld), (ap, ad), (op, od), (cp, cd), (mp, md) = map(
        cat, ("emergency", "elective", "ae", "op", "community", "mh")
    )
    return Activity(ep, ed, lp, ld, ap, ad, op, od, cp, cd, mp, md, death.astype(np.int32), truth, truth_acsc)


def recorded_score(
    hazards: HazardModel, idx: np.ndarray, log_em: np.ndarray, excite: np.ndarray, age: np.ndarray
) -> np.ndarray:
    """Log hazard of emergency admission from recorded facts only: the true hazard less its latent health,
    frailty and smoking terms, times the excitation from recent admissions."""
    p = hazards.people
    hidden = LATENT_SD * p.latent[idx] + hazards.frail[idx] * (0.5 + 0.4 * (age >= 75)) + 0.15 * p.smoker[idx]
    return log_em - hidden + np.log(excitation(excite, age))


def _truth_emergency(
    hazards: HazardModel,
    cal: Calendar,
    m: int,
    excite: np.ndarray,
    mw_em: np.ndarray,
    mw_days: np.ndarray,
    first: np.ndarray,
    move: np.ndarray,
    death: np.ndarray,
    lo: int,
) -> tuple[np.ndarray, np.ndarray]:
    """P(at least one emergency admission in the 12 months from the start of month m).

    Exact for the simulated process: month k contributes S_k (1 - exp(-lambda_k)), where S_k is
    the probability of reaching month k alive with no admission, and the self-excitation from
    admissions before the index date decays deterministically.
    """
    alive = (death < 0) | (death >= lo)
    persons = np.flatnonzero((first <= lo) & (move > lo) & alive & (hazards.people.birth <= int(cal.days[lo])))
    p = np.zeros(persons.size)
    surv = np.ones(persons.size)
    e = excite[persons].copy()
    for k in range(12):
        mk = m + k
        day = int(cal.days[cal.month_start[mk]])
        age = hazards.people.age_at(day)[persons]
        lam = np.minimum(np.exp(hazards.log_emergency(day)[persons]) * excitation(e, age) * mw_em[mk], MAX_MONTHLY_RATE)
        q = 1 - np.exp(-hazards.death_rate(day)[persons] * mw_days[mk])
        p += surv * (1 - np.exp(-lam))
        surv *= np.exp(-lam) * (1 - q)
        e *= EXCITE_DECAY
    return persons.astype(np.int32), p
