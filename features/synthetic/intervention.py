"""A care-coordination programme inside the monthly simulation, with its counterfactual.

From the programme's start, each month the chosen practices offer enrolment to people in the top share by a
risk score, highest first, until the month's capacity has enrolled (offers are declined with probability
1 - uptake; nobody is offered twice). A random `holdout` share of the people the rule picks are held out the
first time they are picked: never offered, recorded as held out (the random holdout a deployment keeps so that
retraining does not learn the programme's success as lower risk). The score is the generator's own hazard of emergency admission from
*recorded* facts only (age, sex, deprivation, conditions, recent admissions), leaving out the unrecorded
latent health, frailty and smoking terms: what a perfect model of the record would rank by.

An enrolled person's emergency admissions are drawn twice each month with common random numbers: once
with the hazard times the true factor (what happens, written to the extracts) and once without (the
counterfactual, kept as ground truth). Each path keeps its own self-excitation, so admissions avoided also
avoid the readmissions they would have caused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import poisson

from features.synthetic.activity import EXCITE_DECAY as DECAY
from features.synthetic.calendar import Calendar, to_days
from features.synthetic.config import ProgrammeConfig

NOT_YET = -1


def factors(cfg: ProgrammeConfig, n: int, groups: dict[str, np.ndarray]) -> np.ndarray:
    """Each person's true factor: their first group's in `cfg.group_factors`, else `cfg.factor`."""
    out = np.full(n, cfg.factor)
    done = np.zeros(n, bool)
    for group, factor in cfg.group_factors.items():
        if group not in groups:
            raise ValueError(f"programme group {group!r}: no membership given")
        take = groups[group] & ~done
        out[take] = factor
        done |= take
    return out


@dataclass
class Programme:
    """State of the programme during the simulation, and its ground truth afterwards."""

    cfg: ProgrammeConfig
    in_practice: np.ndarray  # bool per person: registered with a taking-part practice
    rng: np.random.Generator
    start_day: int = 0
    offer_month: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    enrol_month: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    offer_score: np.ndarray = field(default_factory=lambda: np.empty(0))
    held_month: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    drawn: np.ndarray = field(default_factory=lambda: np.empty(0, bool))  # picked once already (holdout drawn)
    factor_of: np.ndarray = field(default_factory=lambda: np.empty(0))  # each person's true factor if enrolled
    cf_excite: np.ndarray = field(default_factory=lambda: np.empty(0))
    rows: list[tuple[np.ndarray, int, np.ndarray, np.ndarray]] = field(default_factory=list)
    # the first month's scores of everyone the rule looked at (for a regression discontinuity at its cut-off)
    first_month: int = NOT_YET
    first_people: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    first_scores: np.ndarray = field(default_factory=lambda: np.empty(0))

    @classmethod
    def build(
        cls,
        cfg: ProgrammeConfig,
        practice_code: np.ndarray,
        person_practice: np.ndarray,
        seed: int,
        groups: dict[str, np.ndarray] | None = None,
    ) -> "Programme":
        """`groups`: who belongs to each group of `cfg.group_factors` (a mask per group)."""
        chosen = np.ones(practice_code.size, bool) if cfg.practices is None else np.isin(practice_code, cfg.practices)
        if not chosen.any():
            raise ValueError(f"programme practices {cfg.practices} are not practices of this ICS")
        n = person_practice.size
        return cls(
            cfg,
            chosen[person_practice],
            np.random.default_rng([seed, 23]),
            to_days(cfg.start),
            np.full(n, NOT_YET, np.int32),
            np.full(n, NOT_YET, np.int32),
            np.full(n, np.nan),
            held_month=np.full(n, NOT_YET, np.int32),
            drawn=np.zeros(n, bool),
            cf_excite=np.zeros(n),
            factor_of=factors(cfg, n, groups or {}),
        )

    def month(
        self,
        m: int,
        day: int,
        idx: np.ndarray,
        score: np.ndarray,
        log_em: np.ndarray,
        em_rate: np.ndarray,
        excite: np.ndarray,
        excitation,
        cap: float,
        age: np.ndarray,
        firsts: np.ndarray,
        last: np.ndarray,
        cal: Calendar,
        weights: np.ndarray,
        month_weight: float,
        out: list,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Offers for month `m`, then the enrolled's admissions (appended to `out`). Returns the rates left for
        the ordinary draw (zero for the enrolled) and the enrolled's admission counts, both aligned with `idx`."""
        if day >= self.start_day:
            self._offer(m, idx, score, excite)
        j = np.flatnonzero((self.enrol_month[idx] != NOT_YET) & (self.enrol_month[idx] <= m))
        counts = np.zeros(idx.size, np.int64)
        if j.size == 0:
            self.cf_excite *= DECAY
            return em_rate, counts
        pid = idx[j]
        rate_f = em_rate[j] * self.factor_of[pid]
        rate_cf = np.minimum(np.exp(log_em[j]) * excitation(self.cf_excite[pid], age[j]), cap)
        u = np.clip(self.rng.random(j.size), 1e-12, 1 - 1e-12)
        n_f = poisson.ppf(u, rate_f * month_weight).astype(np.int64)
        n_cf = poisson.ppf(u, rate_cf * month_weight).astype(np.int64)
        who = np.repeat(j, n_f)
        if who.size:
            days = cal.sample_days(self.rng, np.full(who.size, m), weights, firsts[who], last[who])
            keep = days <= last[who]
            out.append((idx[who][keep].astype(np.int32), days[keep]))
            counts = np.bincount(who[keep], minlength=idx.size)
        n_cf = np.maximum(
            n_cf - (n_f - counts[j]), 0
        )  # events falling after a death this month are dropped on both paths
        self.cf_excite *= DECAY  # as the factual excitation after this month's draw
        self.cf_excite[pid] += n_cf
        self.rows.append((pid.astype(np.int32), m, counts[j].astype(np.int32), n_cf.astype(np.int32)))
        rest = em_rate.copy()
        rest[j] = 0.0
        return rest, counts

    def _offer(self, m: int, idx: np.ndarray, score: np.ndarray, excite: np.ndarray) -> None:
        here = self.in_practice[idx]
        if not here.any():
            return
        if self.first_month == NOT_YET:
            self.first_month, self.first_people, self.first_scores = m, idx[here].copy(), score[here].copy()
        threshold = np.quantile(score[here], 1 - self.cfg.top_share)
        cand = np.flatnonzero(
            here & (score >= threshold) & (self.offer_month[idx] == NOT_YET) & (self.held_month[idx] == NOT_YET)
        )
        if self.cfg.holdout > 0 and cand.size:  # each person is drawn once, the first time the rule picks them
            new = ~self.drawn[idx[cand]]
            self.drawn[idx[cand]] = True
            held = new & (self.rng.random(cand.size) < self.cfg.holdout)
            self.held_month[idx[cand[held]]] = m
            self.offer_score[idx[cand[held]]] = score[cand[held]]
            cand = cand[~held]
        cand = cand[np.argsort(-score[cand], kind="stable")]
        accept = self.rng.random(cand.size) < self.cfg.uptake
        before = np.cumsum(accept) - accept
        offered = cand[before < self.cfg.capacity]
        accepted = accept[before < self.cfg.capacity]
        pid = idx[offered]
        self.offer_month[pid] = m
        self.offer_score[pid] = score[offered]
        enrolled = pid[accepted]
        self.enrol_month[enrolled] = m
        self.cf_excite[enrolled] = excite[enrolled]

    def person_months(self) -> dict[str, np.ndarray]:
        """Enrolled person-months: person, month index, admissions (factual) and counterfactual admissions."""
        if not self.rows:
            empty = np.empty(0, np.int32)
            return {"person": empty, "month": empty, "admissions": empty, "counterfactual": empty}
        return {
            "person": np.concatenate([r[0] for r in self.rows]),
            "month": np.concatenate([np.full(r[0].size, r[1], np.int32) for r in self.rows]),
            "admissions": np.concatenate([r[2] for r in self.rows]),
            "counterfactual": np.concatenate([r[3] for r in self.rows]),
        }
