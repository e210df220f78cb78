"""COPD and asthma exacerbations as a daily Markov chain, with home-monitoring readings.

Each patient with COPD or asthma is, every day, in one latent state:

* 0 stable; an episode of deterioration starts with a small daily probability (seasonal,
  patient-specific);
* 1..5 deteriorating: each day the episode worsens (p=0.6), eases (p=0.15) or holds; worsening
  from level 5 is an **exacerbation** (a rescue course, or an emergency admission when severe);
* 6..19 recovery for 14 days, then stable again.

Home-monitoring readings (SpO2, FEV1 or peak flow % predicted, heart rate, symptom score,
steps) are noisy functions of the state, so vital signs drift in the days before an
exacerbation (Project Breathe reports signals up to ~10 days ahead). Because the chain is
Markov, the probability of an exacerbation in the next 14 days given today's latent state is the
best any predictor can do, and it is computed exactly by backward recursion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.sources.codes import CONDITION_KEYS
from features.synthetic.calendar import Calendar
from features.synthetic.population import NEVER, Geography, People, deprivation

N_LEVELS = 5
EXACERBATION_STATE = N_LEVELS + 1
RECOVERY_DAYS = 14
N_STATES = 1 + N_LEVELS + RECOVERY_DAYS
UP, DOWN = 0.60, 0.15
P_EXACERBATION_FROM_EPISODE = 0.74  # gambler's ruin from level 1 with UP/DOWN above (~)
FLARE_HORIZON = 14


def severity(state: np.ndarray) -> np.ndarray:
    """How unwell a state looks in the readings: 0 stable, rising to 1 at exacerbation, then fading."""
    s = np.zeros(state.shape)
    det = (state >= 1) & (state <= N_LEVELS)
    s[det] = state[det] / (N_LEVELS + 1)
    rec = state >= EXACERBATION_STATE
    s[rec] = 0.95 * (1 - (state[rec] - EXACERBATION_STATE) / RECOVERY_DAYS)
    return s


def step(state: np.ndarray, start_p: np.ndarray, u: np.ndarray) -> np.ndarray:
    """One day of the chain for every patient (u: uniform draws)."""
    new = state.copy()
    stable = state == 0
    new[stable & (u < start_p)] = 1
    det = (state >= 1) & (state <= N_LEVELS)
    new[det & (u < UP)] += 1
    new[det & (u >= UP) & (u < UP + DOWN)] -= 1
    rec = state >= EXACERBATION_STATE
    new[rec] = np.where(state[rec] == N_STATES - 1, 0, state[rec] + 1)
    return new


def event_probability(state: np.ndarray, start_p: np.ndarray, p_event: np.ndarray | float) -> np.ndarray:
    """P(an event within the horizon | today's state), exactly, by backward recursion.

    `start_p` has one column per future day (patients x horizon). An exacerbation is an event with
    probability `p_event` (1 for any exacerbation, the share admitted for severe ones).
    """
    n, horizon = start_p.shape
    p_event = np.broadcast_to(np.asarray(p_event, dtype=np.float64), (n,))
    # g[s] = P(event within the remaining steps | state s); states are rows, so row ops are contiguous
    g = np.zeros((N_STATES, n))
    stay = 1 - UP - DOWN
    start_p = np.ascontiguousarray(start_p.T)
    for t in range(horizon - 1, -1, -1):
        hit = p_event + (1 - p_event) * g[EXACERBATION_STATE]  # value of entering the exacerbation state
        new = np.empty_like(g)
        a = start_p[t]
        new[0] = a * g[1] + (1 - a) * g[0]
        new[1:N_LEVELS] = UP * g[2 : N_LEVELS + 1] + DOWN * g[0 : N_LEVELS - 1] + stay * g[1:N_LEVELS]
        new[N_LEVELS] = UP * hit + DOWN * g[N_LEVELS - 1] + stay * g[N_LEVELS]
        new[EXACERBATION_STATE : N_STATES - 1] = g[EXACERBATION_STATE + 1 : N_STATES]
        new[N_STATES - 1] = g[0]
        g = new
    return g[state, np.arange(n)]


@dataclass
class Respiratory:
    """Exacerbations of every COPD/asthma patient, readings and truth for monitored ones."""

    exac_person: np.ndarray
    exac_day: np.ndarray  # day index of onset
    exac_severe: np.ndarray  # bool: emergency admission rather than a rescue course
    exac_condition: np.ndarray  # 'copd' or 'asthma'
    readings: dict[str, np.ndarray]  # person, day and measures
    monitored_person: np.ndarray
    truth_flare: dict[str, np.ndarray]  # person, day, p_true (14 days ahead)
    truth_admission: dict[int, tuple[np.ndarray, np.ndarray]]  # index day -> (persons, P(severe in 12m))


def simulate_respiratory(
    people: People,
    geo: Geography,
    cal: Calendar,
    rng: np.random.Generator,
    monitoring_start: int,
    index_days: list[int],
) -> Respiratory:
    copd_on = people.onset[:, CONDITION_KEYS.index("copd")]
    asthma_on = people.onset[:, CONDITION_KEYS.index("asthma")]
    pts = np.flatnonzero((copd_on < NEVER) | (asthma_on < NEVER))
    n = pts.size
    has_copd = copd_on[pts] < NEVER
    dep = deprivation(geo.imd_decile[people.lsoa[pts]])
    # yearly exacerbation rate: COPD ~1.4, asthma ~0.3, heterogeneous (gamma) and higher when deprived
    rate = np.where(has_copd, rng.gamma(2.0, 0.7, n), rng.gamma(2.0, 0.15, n))
    rate *= np.exp(0.4 * dep + 0.3 * people.latent[pts] + 0.3 * people.smoker[pts] - 0.25)
    base_start = rate / P_EXACERBATION_FROM_EPISODE / 365.25
    season = cal.winter(0.35)
    p_severe = np.clip(np.where(has_copd, 0.2, 0.09) * np.exp(0.15 * people.frailty[pts]), 0, 0.8)
    onset = np.minimum(np.where(has_copd, copd_on[pts], NEVER), asthma_on[pts]).astype(np.int64)
    cond = np.where(has_copd, "copd", "asthma")

    # who is monitored at home: adults, a quarter of COPD and one in sixteen asthma patients
    age_mon = people.age_at(monitoring_start)[pts]
    day0 = int(cal.days[0])
    wants = (age_mon >= 18) & (rng.random(n) < np.where(has_copd, 0.25, 0.0625))
    enrol = np.maximum.reduce(
        [monitoring_start - day0 + rng.integers(0, 180, n), onset - day0, people.reg_start[pts].astype(np.int64) - day0]
    )
    exit_idx = np.minimum(people.exit[pts].astype(np.int64), int(cal.days[-1]) + 1) - day0
    monitored = wants & (enrol < exit_idx)
    mon = np.flatnonzero(monitored)
    adherence = rng.beta(5, 2, mon.size)
    base = {
        "spo2": np.where(has_copd[mon], rng.normal(94.0, 1.5, mon.size), rng.normal(97.5, 0.8, mon.size)),
        "fev1": rng.normal(55.0, 12.0, mon.size).clip(20, 90),
        "pef": rng.normal(85.0, 10.0, mon.size).clip(40, 110),
        "hr": rng.normal(78.0, 8.0, mon.size),
        "sym": np.where(has_copd[mon], rng.normal(3.0, 1.0, mon.size), rng.normal(1.5, 0.8, mon.size)),
        "steps": rng.lognormal(8.3, 0.5, mon.size),
    }

    state = np.zeros(n, dtype=np.int64)
    events: list[tuple[np.ndarray, np.ndarray]] = []
    reads: dict[str, list[np.ndarray]] = {k: [] for k in ("person", "day", "spo2", "fev1", "pef", "hr", "sym", "steps")}
    truth_flare: dict[str, list[np.ndarray]] = {"person": [], "day": [], "p": []}
    truth_adm: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    reg_idx = people.reg_start[pts].astype(np.int64) - day0
    for d in range(cal.n_days):
        day = int(cal.days[d])
        active = (onset <= day) & (reg_idx <= d) & (d < exit_idx)
        start_p = base_start * season[d]
        if day in index_days:
            act = np.flatnonzero(active)
            future = np.minimum(np.arange(d, d + 365), cal.n_days - 1)
            sp = base_start[act, None] * season[None, future]
            truth_adm[day] = (pts[act].astype(np.int32), event_probability(state[act], sp, p_severe[act]))
        u = rng.random(n)
        new = step(state, start_p, u)
        new[~active] = 0
        hit = np.flatnonzero(new == EXACERBATION_STATE)
        if hit.size:
            events.append((hit, np.full(hit.size, d, dtype=np.int32)))
        state = new
        on = np.flatnonzero(monitored[mon] & (enrol[mon] <= d) & (d < exit_idx[mon]) & active[mon])
        if on.size:
            who = mon[on]
            sev = severity(state[who])
            read = rng.random(on.size) < adherence[on] * (1 - 0.25 * sev)
            r, s = on[read], sev[read]
            k = r.size
            reads["person"].append(pts[who[read]])
            reads["day"].append(np.full(k, d, dtype=np.int32))
            reads["spo2"].append(np.clip(np.rint(base["spo2"][r] - 4.5 * s + rng.normal(0, 1.0, k)), 70, 100))
            copd_r = has_copd[who[read]]
            fev1 = base["fev1"][r] * (1 - 0.25 * s) + rng.normal(0, 4.0, k)
            pef = base["pef"][r] * (1 - 0.30 * s) + rng.normal(0, 5.0, k)
            reads["fev1"].append(np.where(copd_r, np.round(fev1, 1), np.nan))
            reads["pef"].append(np.where(copd_r, np.nan, np.round(pef, 1)))
            reads["hr"].append(np.rint(base["hr"][r] + 15 * s + rng.normal(0, 5.0, k)))
            reads["sym"].append(np.clip(np.rint(base["sym"][r] + 5 * s + rng.normal(0, 0.8, k)), 0, 10))
            reads["steps"].append(np.rint(base["steps"][r] * (1 - 0.45 * s) * rng.lognormal(0, 0.25, k)))
            future = np.minimum(np.arange(d + 1, d + 1 + FLARE_HORIZON), cal.n_days - 1)
            sp = base_start[who, None] * season[None, future]
            truth_flare["person"].append(pts[who])
            truth_flare["day"].append(np.full(on.size, d, dtype=np.int32))
            truth_flare["p"].append(event_probability(state[who], sp, 1.0))

    ev_p, ev_d = (np.concatenate(x) for x in zip(*events)) if events else (np.empty(0, np.int64),) * 2
    severe = rng.random(ev_p.size) < p_severe[ev_p]
    return Respiratory(
        exac_person=pts[ev_p].astype(np.int32),
        exac_day=ev_d.astype(np.int32),
        exac_severe=severe,
        exac_condition=cond[ev_p],
        readings={k: np.concatenate(v) if v else np.empty(0) for k, v in reads.items()},
        monitored_person=pts[mon].astype(np.int32),
        truth_flare={k: np.concatenate(v) if v else np.empty(0) for k, v in truth_flare.items()},
        truth_admission=truth_adm,
    )
