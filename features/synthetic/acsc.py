"""Emergency admissions for an ambulatory care sensitive condition (ACSC) in the synthetic ICS.

One process, used twice: the hospital extract draws each emergency admission's primary diagnosis with it
(`recode`), and the ground truth (`truth`) computes each person's probability of at least one ACSC admission in
the 12 months after an index date from the same probabilities.

An emergency admission (other than a COPD/asthma exacerbation, always an ACSC) is for an ACSC when it is coded to a
long-term condition whose admission code is on the list (heart failure, atrial fibrillation, angina, dementia; see
`tables.HospitalBuilder.spells`) or, otherwise, when it is drawn as an acute ACSC (urinary infection, cellulitis,
dehydration, ...): more often in deprived areas and in old age, as in England. Acute ACSCs are about 6% of
emergency admissions and all ACSCs about a fifth (~1 in 5 in England by the NHS Outcomes Framework's list).
"""

from __future__ import annotations

import numpy as np

from features.sources.codes import (
    CONDITION_ADMISSION_ICD10,
    CONDITION_KEYS,
    EMERGENCY_DIAGNOSES_GENERAL,
    SYNTHETIC_ACSC_ACUTE,
    is_acsc,
)

CONDITION_CODED = 0.12  # chance an emergency admission of someone with a condition is coded to it (each condition)
ACUTE_BASE = 0.04  # chance a general emergency admission is an acute ACSC: least deprived, under 75
DEPRIVATION_GAIN = 0.8  # log multiplier, most against least deprived
OLD_AGE_GAIN = 0.3  # log multiplier at 75 and over
TRUTH_DRAWS = 16  # paths of the other (non-ACSC) admissions averaged over in the truth
_CHUNK = 50_000

GENERAL = np.array([c for c in EMERGENCY_DIAGNOSES_GENERAL if not is_acsc(c)])
ACUTE = np.array(list(SYNTHETIC_ACSC_ACUTE))
ACUTE_P = np.array(list(SYNTHETIC_ACSC_ACUTE.values())) / sum(SYNTHETIC_ACSC_ACUTE.values())
# (condition column, its admission code, whether that code is an ACSC), in the order the extract applies them
CONDITION_CODES = [(CONDITION_KEYS.index(k), code, is_acsc(code)) for k, code in CONDITION_ADMISSION_ICD10.items()]


def acute_share(dep: np.ndarray, age: np.ndarray) -> np.ndarray:
    """Chance a general emergency admission is an acute ACSC, by deprivation (0 least, 1 most) and age."""
    return ACUTE_BASE * np.exp(DEPRIVATION_GAIN * dep + OLD_AGE_GAIN * (age >= 75))


def recode(
    diag: np.ndarray, general: np.ndarray, dep: np.ndarray, age: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """The diagnoses with every `general` admission (not coded to a condition or an exacerbation) drawn again: an acute
    ACSC with probability `acute_share`, else a general diagnosis that is not an ACSC."""
    n = diag.size
    acute = rng.random(n) < acute_share(dep, age)
    code = np.where(acute, rng.choice(ACUTE, n, p=ACUTE_P), rng.choice(GENERAL, n))
    return np.where(general, code, diag)


def share(onset: np.ndarray, persons: np.ndarray, day: int, dep: np.ndarray, age: np.ndarray) -> np.ndarray:
    """Chance an emergency admission (not an exacerbation) of each person on `day` is for an ACSC: each condition held
    codes it with probability CONDITION_CODED, the last in order winning; otherwise it is general (`acute_share`)."""
    p_acsc = np.zeros(persons.size)
    p_none = np.ones(persons.size)  # no later condition coded it
    for j, _code, acsc in reversed(CONDITION_CODES):
        coded = CONDITION_CODED * (onset[persons, j] <= day)
        if acsc:
            p_acsc += p_none * coded
        p_none *= 1 - coded
    return p_acsc + p_none * acute_share(dep, age)


def _poisson(mean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Independent Poisson counts, drawn as one Poisson total spread in proportion to the means (cheap when sparse)."""
    flat = mean.ravel()
    cum = np.cumsum(flat)
    total = rng.poisson(cum[-1]) if cum.size else 0
    hits = np.searchsorted(cum, rng.random(total) * cum[-1], side="right")
    return np.bincount(np.minimum(hits, flat.size - 1), minlength=flat.size).reshape(mean.shape)


def truth(
    hazards,
    dep_all: np.ndarray,
    cal,
    m: int,
    excite: np.ndarray,
    mw_em: np.ndarray,
    mw_days: np.ndarray,
    persons: np.ndarray,
    rng: np.random.Generator,
    max_rate: float,
    excitation,
    decay: float,
) -> np.ndarray:
    """P(at least one emergency ACSC admission in the 12 months from the start of month m), exacerbations aside.

    Within a month the ACSC and other admissions are independent Poisson counts (a thinning of the person's
    emergency hazard by `share`); deaths compete as in the all-cause truth. Other admissions raise later months'
    hazard (self-excitation), so the probability is averaged over TRUTH_DRAWS simulated paths of them, each path's
    ACSC probability computed exactly (Rao-Blackwellised: on 20,000 people two independent sets of paths gave
    probabilities correlating 0.9988, a typical person's differing by 0.1% of it; tests/integration/test_generator).
    Conditions are those held on the first day of each month (the extract codes by the admission day: an onset
    within a month is rounded). `excitation(recent, age)` and `decay` are the simulation's self-excitation."""
    people = hazards.people
    out = np.empty(persons.size)
    for lo in range(0, persons.size, _CHUNK):
        who = persons[lo : lo + _CHUNK]
        dep = dep_all[who]
        e = np.repeat(excite[who][:, None], TRUTH_DRAWS, axis=1)
        p = np.zeros(e.shape)
        surv = np.ones(e.shape)
        for k in range(12):
            mk = m + k
            day = int(cal.days[cal.month_start[mk]])
            age = people.age_at(day)[who]
            a = share(people.onset, who, day, dep, age)[:, None]
            base = np.exp(hazards.log_emergency(day)[who])[:, None]
            lam = np.minimum(base * excitation(e, age[:, None]) * mw_em[mk], max_rate)
            q = (1 - np.exp(-hazards.death_rate(day)[who] * mw_days[mk]))[:, None]
            p += surv * (1 - np.exp(-a * lam))
            surv *= np.exp(-a * lam) * (1 - q)
            e = e * decay + _poisson(lam * (1 - a), rng)
        out[lo : lo + _CHUNK] = p.mean(axis=1)
    return out
