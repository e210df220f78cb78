"""Geography (ICB, places, PCNs, practices, LSOAs with IMD, acute sites) and the people in it.

Everything is vectorised over persons. Dates are int32 days since 1970-01-01.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit

from features.sources import nhs_number
from features.sources.codes import BROAD_ETHNIC_GROUP, CONDITIONS
from features.synthetic.calendar import Calendar
from features.synthetic.config import GeneratorConfig

# England mid-2021 population by 5-year age band (0-4 ... 90+), per cent (ONS, rounded).
AGE_PYRAMID = np.array([5.4, 5.9, 6.0, 5.6, 6.0, 6.6, 6.9, 6.6, 6.3, 6.4, 6.9, 6.7, 5.9, 5.0, 5.1, 3.7, 2.5, 1.5, 0.9])
# Shares of ethnic categories among people with a known category (2021 census, England, ~).
ETHNIC_SHARES = {
    "A": 74.4,
    "B": 0.9,
    "C": 6.2,
    "D": 0.9,
    "E": 0.4,
    "F": 0.8,
    "G": 0.9,
    "H": 3.3,
    "J": 2.7,
    "K": 1.1,
    "L": 1.7,
    "M": 1.1,
    "N": 2.5,
    "P": 0.5,
    "R": 0.8,
    "S": 1.6,
}
PLACES = ["Northgate", "Riverside", "Eastfield", "Westmoor", "Southbank", "Hillcrest", "Lakeside", "Fairview"]
IMD_DOMAINS = ["income", "employment", "education", "health", "crime", "barriers", "living_environment"]
SITE_NAMES = ["General Hospital", "Royal Infirmary", "University Hospital", "District Hospital"]

# Per condition: (log-odds per decade of age from 50, deprivation effect (most vs least deprived),
# minimum age, {broad ethnic group: log-odds shift}, smoking effect)
CONDITION_RISK: dict[str, tuple[float, float, int, dict[str, float], float]] = {
    "hypertension": (0.75, 0.35, 18, {"Black": 0.6, "Asian": 0.2}, 0.1),
    "diabetes": (0.45, 0.55, 10, {"Asian": 0.9, "Black": 0.6}, 0.1),
    "asthma": (-0.05, 0.30, 2, {}, 0.3),
    "copd": (0.80, 1.00, 35, {"Asian": -0.5, "Black": -0.5, "Other": -0.3}, 1.6),
    "chd": (0.85, 0.50, 30, {"Asian": 0.4}, 0.5),
    "heart_failure": (1.00, 0.50, 30, {}, 0.4),
    "atrial_fibrillation": (1.10, 0.10, 30, {"White": 0.3}, 0.1),
    "ckd": (1.00, 0.30, 18, {"Asian": 0.2, "Black": 0.3}, 0.1),
    "stroke": (0.90, 0.40, 18, {"Black": 0.3}, 0.4),
    "dementia": (1.60, 0.30, 50, {}, 0.1),
    "depression": (-0.05, 0.50, 12, {"White": 0.3}, 0.3),
}


PREVALENCE_AIM = 1.4


@dataclass
class Geography:
    """Organisations and small areas of one synthetic ICS."""

    icb_code: str
    practice_code: np.ndarray
    practice_pcn: np.ndarray
    practice_place: np.ndarray
    practice_site: np.ndarray  # index of the home acute site
    practice_weight: np.ndarray  # share of the population registered
    lsoa_code: np.ndarray
    lsoa_practice: np.ndarray  # practice whose catchment holds the LSOA
    imd_decile: np.ndarray
    imd_domains: dict[str, np.ndarray]
    site_code: np.ndarray
    site_name: np.ndarray


@dataclass
class People:
    """One row per person ever registered in the ICS during the history (plus latent truth)."""

    nhs_number: np.ndarray
    birth: np.ndarray  # day
    sex: np.ndarray  # 'M' / 'F'
    ethnicity: np.ndarray  # true category (never unknown)
    ethnicity_recorded: np.ndarray  # as recorded in the GP record (may be Z/99)
    practice: np.ndarray  # practice index
    lsoa: np.ndarray  # LSOA index
    reg_start: np.ndarray
    exit_move: np.ndarray  # day of moving away (deregistration) or a large sentinel
    smoker: np.ndarray
    latent: np.ndarray  # unobserved health (standard normal)
    onset: np.ndarray  # (n, conditions) onset day or sentinel
    frailty: np.ndarray  # latent frailty deficit count
    death: np.ndarray = field(default=None)  # set by the activity simulation
    exit: np.ndarray = field(default=None)  # min(death, move)

    @property
    def n(self) -> int:
        return int(self.birth.size)

    def age_at(self, day: int | np.ndarray) -> np.ndarray:
        return (np.asarray(day) - self.birth) / 365.25


NEVER = np.int32(2**31 - 1)


def build_geography(cfg: GeneratorConfig, rng: np.random.Generator) -> Geography:
    n_prac = cfg.n_practices
    n_sites = cfg.n_sites
    n_places = int(min(len(PLACES), n_prac, max(n_sites, round(n_prac / 25) + 2)))
    weight = rng.lognormal(0.0, 0.45, n_prac)
    weight /= weight.sum()
    # practices fill places in turn so that places (and their acute sites) carry similar loads
    mid = np.cumsum(weight) - weight / 2
    place_of_prac = np.minimum(mid * n_places, n_places - 1).astype(np.int64)
    site_of_prac = np.minimum(mid * n_sites, n_sites - 1).astype(np.int64)
    # PCNs: consecutive practices of a place, 3-6 per PCN
    pcn = np.empty(n_prac, dtype=np.int32)
    next_pcn, i = 0, 0
    while i < n_prac:
        size = int(rng.integers(3, 7))
        j = i
        while j < n_prac and j < i + size and place_of_prac[j] == place_of_prac[i]:
            j += 1
        pcn[i:j] = next_pcn
        next_pcn, i = next_pcn + 1, j
    # LSOAs (~400 people each here; real ones hold ~1,600) with deciles spread evenly over the
    # national range, handed to practices in order of deprivation so that catchments cluster
    n_lsoa = max(10 * n_prac, cfg.persons // 400)
    decile = rng.permutation(np.arange(n_lsoa) % 10 + 1).astype(np.int8)
    by_deprivation = np.argsort(decile + rng.normal(0, 1.2, n_lsoa), kind="stable")
    prac_order = rng.permutation(n_prac)
    share = np.cumsum(weight[prac_order])
    slot = np.minimum(np.searchsorted(share, (np.arange(n_lsoa) + 0.5) / n_lsoa), n_prac - 1)
    lsoa_prac = np.empty(n_lsoa, dtype=np.int64)
    lsoa_prac[by_deprivation] = prac_order[slot]
    domains = {d: np.clip(np.rint(decile + rng.normal(0, 1.5, n_lsoa)), 1, 10).astype(np.int8) for d in IMD_DOMAINS}
    lsoa_numbers = rng.choice(np.arange(1, 35_000), n_lsoa, replace=False)
    site_codes = np.array([f"RSY{i + 1:02d}" for i in range(n_sites)])
    site_names = np.array([f"{PLACES[i % len(PLACES)]} {SITE_NAMES[i % len(SITE_NAMES)]}" for i in range(n_sites)])
    return Geography(
        icb_code="QSY",
        practice_code=np.array([f"S{10001 + i}" for i in range(n_prac)]),
        practice_pcn=np.array([f"U{20001 + p}" for p in pcn]),
        practice_place=np.array([PLACES[p] for p in place_of_prac]),
        practice_site=site_of_prac,
        practice_weight=weight,
        lsoa_code=np.array([f"E01{n:06d}" for n in lsoa_numbers]),
        lsoa_practice=lsoa_prac.astype(np.int32),
        imd_decile=decile,
        imd_domains=domains,
        site_code=site_codes,
        site_name=site_names,
    )


def deprivation(decile: np.ndarray) -> np.ndarray:
    """0 for the least deprived decile (10), 1 for the most deprived (1)."""
    return (10 - decile.astype(np.float64)) / 9.0


def _draw_ages(rng: np.random.Generator, n: int) -> np.ndarray:
    band = rng.choice(AGE_PYRAMID.size, n, p=AGE_PYRAMID / AGE_PYRAMID.sum())
    width = np.where(band == AGE_PYRAMID.size - 1, 12.0, 5.0)
    return band * 5 + rng.random(n) * width


def build_people(cfg: GeneratorConfig, geo: Geography, cal: Calendar, rng: np.random.Generator) -> People:
    n = cfg.persons
    start, end = int(cal.days[0]), int(cal.days[-1])
    years = (end - start) / 365.25
    # births during the history (~1.1% a year), everyone else from the pyramid at the start
    n_born = int(round(n * 0.009 * years))
    age0 = _draw_ages(rng, n - n_born)
    birth = np.r_[start - np.rint(age0 * 365.25), rng.integers(start, end - 30, n_born)].astype(np.int32)
    sex = np.where(rng.random(n) < 0.494, "M", "F")
    practice = rng.choice(geo.practice_code.size, n, p=geo.practice_weight).astype(np.int32)
    # most people live in their practice's catchment
    lsoa = _draw_lsoa(rng, geo, practice)
    dep = deprivation(geo.imd_decile[lsoa])
    age_mid = (start + end) / 2 - birth
    ethnicity = _draw_ethnicity(rng, dep, age_mid / 365.25)
    broad = np.vectorize(BROAD_ETHNIC_GROUP.get, otypes=["U7"])(ethnicity)
    ethnicity_recorded = _record_ethnicity(rng, ethnicity, broad, sex, age_mid / 365.25, dep)
    # registration: 12% of existing residents move in during the history
    moved_in = (rng.random(n) < 0.12) & (np.arange(n) < n - n_born)
    reg_before = np.maximum(birth, start - rng.exponential(12 * 365.25, n).astype(np.int32))
    reg_start = np.where(moved_in, rng.integers(start, end - 30, n), reg_before)
    reg_start = np.where(np.arange(n) >= n - n_born, birth, reg_start).astype(np.int32)
    # moving away: ~2% a year, more at ages 18-35
    age_start = (start - birth) / 365.25
    move_rate = np.where((age_start > 16) & (age_start < 36), 0.035, 0.015)
    exit_move = (np.maximum(reg_start, start) + rng.exponential(365.25 / move_rate)).astype(np.int64)
    exit_move = np.where(exit_move > end, NEVER, exit_move).astype(np.int32)
    smoker = rng.random(n) < np.where(age_start >= 16, 0.09 + 0.12 * dep, 0.0)
    latent = rng.normal(0.0, 1.0, n)
    age_end = (end - birth) / 365.25
    onset = _draw_conditions(rng, cfg, age_end, birth, dep, broad, smoker, latent)
    n_conditions = (onset < NEVER).sum(axis=1)
    frail_rate = np.exp(-4.2 + 0.075 * np.maximum(age_end - 40, 0) + 0.28 * n_conditions + 0.3 * latent)
    frailty = rng.poisson(np.minimum(frail_rate, 12)).clip(0, 12).astype(np.int8)
    return People(
        nhs_number=nhs_number.generate(rng, n),
        birth=birth,
        sex=sex,
        ethnicity=ethnicity,
        ethnicity_recorded=ethnicity_recorded,
        practice=practice,
        lsoa=lsoa,
        reg_start=reg_start,
        exit_move=exit_move,
        smoker=smoker,
        latent=latent,
        onset=onset,
        frailty=frailty,
    )


def _draw_lsoa(rng: np.random.Generator, geo: Geography, practice: np.ndarray) -> np.ndarray:
    order = np.argsort(geo.lsoa_practice, kind="stable")
    counts = np.bincount(geo.lsoa_practice, minlength=geo.practice_code.size)
    first = np.r_[0, np.cumsum(counts)[:-1]]
    own = order[first[practice] + (rng.random(practice.size) * counts[practice]).astype(np.int64)]
    anywhere = rng.integers(0, geo.lsoa_code.size, practice.size)
    return np.where(rng.random(practice.size) < 0.85, own, anywhere).astype(np.int32)


def _draw_ethnicity(rng: np.random.Generator, dep: np.ndarray, age: np.ndarray) -> np.ndarray:
    cats = np.array(list(ETHNIC_SHARES))
    shares = np.array(list(ETHNIC_SHARES.values()))
    white = np.isin(cats, ["A", "B", "C"])
    # minority groups are younger and live more often in deprived urban areas
    minority_boost = np.exp(0.9 * (dep - 0.5) - 0.015 * (age - 40))
    p_min = shares[~white].sum() / shares.sum() * minority_boost
    p_min = np.clip(p_min / np.mean(minority_boost), 0, 0.9)
    is_min = rng.random(dep.size) < p_min
    out = np.where(
        is_min,
        rng.choice(cats[~white], dep.size, p=shares[~white] / shares[~white].sum()),
        rng.choice(cats[white], dep.size, p=shares[white] / shares[white].sum()),
    )
    return out.astype("U2")


def _record_ethnicity(
    rng: np.random.Generator, true_cat: np.ndarray, broad: np.ndarray, sex: np.ndarray, age: np.ndarray, dep: np.ndarray
) -> np.ndarray:
    """Ethnicity is unrecorded for a realistic, unequal minority (more often young men, Mixed/Other)."""
    logit = -2.5 + 0.35 * (sex == "M") - 0.012 * (age - 40) + 0.4 * dep
    logit += np.select([broad == "Mixed", broad == "Other", broad == "White"], [0.7, 0.8, -0.15], 0.0)
    unknown = rng.random(true_cat.size) < expit(logit)
    code = np.where(rng.random(true_cat.size) < 0.4, "Z", "99")
    return np.where(unknown, code, true_cat).astype("U2")


def _draw_conditions(
    rng: np.random.Generator,
    cfg: GeneratorConfig,
    age_end: np.ndarray,
    birth: np.ndarray,
    dep: np.ndarray,
    broad: np.ndarray,
    smoker: np.ndarray,
    latent: np.ndarray,
) -> np.ndarray:
    """Onset day of each long-term condition (NEVER when absent), calibrated to England prevalence."""
    n = age_end.size
    onset = np.full((n, len(CONDITIONS)), NEVER, dtype=np.int32)
    shared = 0.5 * latent + rng.normal(0, 0.5, n)  # multimorbidity clusters
    for j, cond in enumerate(CONDITIONS):
        per_decade, dep_eff, min_age, eth, smoke = CONDITION_RISK[cond.key]
        eth_shift = np.zeros(n)
        for group, shift in eth.items():
            eth_shift[broad == group] = shift
        lin = per_decade * (age_end - 50) / 10 + dep_eff * dep + eth_shift + smoke * smoker + 0.6 * shared
        eligible = age_end >= min_age
        # aimed above the point prevalence: deaths and later onsets lower it at any index date
        target = PREVALENCE_AIM * cond.prevalence * n / max(eligible.sum(), 1)
        intercept = _calibrate_intercept(lin[eligible][:100_000], target)
        has = eligible & (rng.random(n) < expit(intercept + lin))
        onset_age = np.maximum(age_end - rng.exponential(8.0, n), min_age)
        onset[has, j] = (birth + onset_age * 365.25)[has].astype(np.int32)
    return onset


def _calibrate_intercept(lin: np.ndarray, target: float) -> float:
    """Intercept so that mean(expit(intercept + lin)) equals the target prevalence (bisection)."""
    target = min(max(target, 1e-6), 0.95)
    lo, hi = -20.0, 20.0
    for _ in range(36):
        mid = (lo + hi) / 2
        if expit(mid + lin).mean() < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
