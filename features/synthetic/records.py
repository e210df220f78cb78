"""Primary care, prescribing, social care, housing and home-monitoring extracts of the synthetic ICS (the
hospital and organisation tables are in `tables`). Each builder returns a `pyarrow.Table` keyed by NHS number."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from features.sources.codes import (
    BNF_BY_CONDITION,
    BNF_COMMON,
    CONDITIONS,
    FRAILTY_DEFICITS,
    HOUSING_FLAGS,
    RESCUE_PACK,
    SMOKER_CODE,
    SOCIAL_CARE_SERVICES,
)
from features.synthetic.calendar import Calendar
from features.synthetic.config import GeneratorConfig
from features.synthetic.population import Geography, People, deprivation
from features.synthetic.respiratory import Respiratory
from features.synthetic.tables import date_array, id_array, sort_order, take


def under_recorded(cfg: GeneratorConfig, people: People, geo: Geography, rng: np.random.Generator) -> np.ndarray:
    """(persons x conditions) mask of diagnoses that the GP record never codes (injected problem)."""
    from features.sources.codes import BROAD_ETHNIC_GROUP

    mask = np.zeros(people.onset.shape, dtype=bool)
    d = cfg.defects
    if d.under_record_group is None or d.under_record_share <= 0:
        return mask
    if d.under_record_group == "core20":
        group = geo.imd_decile[people.lsoa] <= 2
    else:
        group = np.vectorize(BROAD_ETHNIC_GROUP.get)(people.ethnicity) == d.under_record_group
    return group[:, None] & (rng.random(people.onset.shape) < d.under_record_share)


def gp_events(people: People, cal: Calendar, rng: np.random.Generator, hidden: np.ndarray, nhs: pa.Array) -> pa.Table:
    start, end = int(cal.days[0]), int(cal.days[-1])
    exit_ = np.minimum(people.exit, end)
    vocab = [c.snomed for c in CONDITIONS] + list(FRAILTY_DEFICITS) + ["271649006", "60621009", SMOKER_CODE]
    code_of = {c: i for i, c in enumerate(vocab)}
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    # long-term condition diagnoses at onset (the record keeps historic diagnoses)
    pi, ci = np.nonzero((people.onset <= exit_[:, None]) & ~hidden)
    parts.append((pi, people.onset[pi, ci], ci, np.full(pi.size, np.nan)))
    # frailty deficits, recorded at some point while registered in later life
    n_def = np.minimum(people.frailty, len(FRAILTY_DEFICITS)).astype(np.int64)
    fp = np.repeat(np.arange(people.n), n_def)
    n_codes = len(FRAILTY_DEFICITS)
    slot = (rng.random(fp.size) * n_codes).astype(np.int64) + code_of[next(iter(FRAILTY_DEFICITS))]
    lo = np.maximum(np.maximum(people.reg_start[fp], people.birth[fp] + 50 * 365), start - 3 * 365)
    hi = np.maximum(exit_[fp], lo + 1)
    fd = (lo + rng.random(fp.size) * (hi - lo)).astype(np.int64)
    keep = fd <= exit_[fp]
    parts.append((fp[keep], fd[keep], slot[keep], np.full(keep.sum(), np.nan)))
    # routine observations: blood pressure (more often with hypertension/diabetes) and BMI
    adult_years = np.clip(
        (exit_ - np.maximum(np.maximum(people.reg_start, start), people.birth + 18 * 365)) / 365.25, 0, None
    )
    htn = (people.onset[:, 0] <= end) | (people.onset[:, 1] <= end)
    n_bp = rng.poisson(adult_years * np.where(htn, 1.2, 0.35))
    bp_p = np.repeat(np.arange(people.n), n_bp)
    lo = np.maximum(np.maximum(people.reg_start[bp_p], start), people.birth[bp_p] + 18 * 365)
    bp_d = (lo + rng.random(bp_p.size) * np.maximum(exit_[bp_p] - lo, 1)).astype(np.int64)
    age = (bp_d - people.birth[bp_p]) / 365.25
    sbp = np.rint(110 + 0.45 * age + 12 * htn[bp_p] + rng.normal(0, 13, bp_p.size))
    parts.append((bp_p, bp_d, np.full(bp_p.size, code_of["271649006"]), sbp))
    n_bmi = rng.poisson(adult_years * 0.25)
    bm_p = np.repeat(np.arange(people.n), n_bmi)
    lo = np.maximum(np.maximum(people.reg_start[bm_p], start), people.birth[bm_p] + 18 * 365)
    bm_d = (lo + rng.random(bm_p.size) * np.maximum(exit_[bm_p] - lo, 1)).astype(np.int64)
    bmi = np.round(rng.lognormal(np.log(27.5), 0.17, bm_p.size), 1)
    parts.append((bm_p, bm_d, np.full(bm_p.size, code_of["60621009"]), bmi))
    # smoking status
    sm = np.flatnonzero(people.smoker & (adult_years > 0))
    sm_lo = np.maximum(np.maximum(people.reg_start[sm], start), people.birth[sm] + 16 * 365)
    sm_d = (sm_lo + rng.random(sm.size) * np.maximum(exit_[sm] - sm_lo, 1)).astype(np.int64)
    parts.append((sm, sm_d, np.full(sm.size, code_of[SMOKER_CODE]), np.full(sm.size, np.nan)))

    person = np.concatenate([p[0] for p in parts])
    day = np.concatenate([p[1] for p in parts]).astype(np.int64)
    code = np.concatenate([p[2] for p in parts])
    value = np.concatenate([p[3] for p in parts])
    order = sort_order(day, person, code)
    return pa.table(
        {
            "event_id": id_array("GP", person.size),
            "nhs_number": take(nhs, person[order]),
            "event_date": date_array(day[order]),
            "code_system": take(["SNOMED"], np.zeros(person.size)),
            "code": take(vocab, code[order]),
            "value": pa.array(value[order], mask=np.isnan(value[order])),
        }
    )


def prescriptions(
    people: People, cal: Calendar, resp: Respiratory, rng: np.random.Generator, hidden: np.ndarray, nhs: pa.Array
) -> pa.Table:
    start, end = int(cal.days[0]), int(cal.days[-1])
    exit_ = np.minimum(people.exit, end)
    persons, days, bnf = [], [], []
    vocab = sorted({d for drugs in BNF_BY_CONDITION.values() for d in drugs} | set(BNF_COMMON) | set(RESCUE_PACK))
    code_of = {c: i for i, c in enumerate(vocab)}
    cond_keys = [c.key for c in CONDITIONS]
    interval = 120  # repeat issues every ~4 months keep the volume modest
    for j, key in enumerate(cond_keys):
        # an uncoded diagnosis is still treated half of the time
        treated = (people.onset[:, j] <= exit_) & (~hidden[:, j] | (rng.random(people.n) < 0.5))
        for drug in BNF_BY_CONDITION[key][:2]:
            on_drug = treated & (rng.random(people.n) < 0.8)
            first = np.maximum(np.maximum(people.onset[:, j], people.reg_start), start) + rng.integers(
                0, interval, people.n
            )
            n_issue = np.where(on_drug, np.maximum((exit_ - first) // interval + 1, 0), 0)
            p = np.repeat(np.arange(people.n), n_issue)
            k = np.arange(p.size) - np.repeat(np.cumsum(n_issue) - n_issue, n_issue)
            persons.append(p)
            days.append(first[p] + k * interval)
            bnf.append(np.full(p.size, code_of[drug]))
    # common medicines in later life
    age_end = (exit_ - people.birth) / 365.25
    for drug in BNF_COMMON:
        on_drug = rng.random(people.n) < np.clip(0.004 * (age_end - 30), 0, 0.35)
        first = np.maximum(people.reg_start, start) + rng.integers(0, 365, people.n)
        n_issue = np.where(on_drug, np.maximum((exit_ - first) // interval + 1, 0), 0)
        p = np.repeat(np.arange(people.n), n_issue)
        k = np.arange(p.size) - np.repeat(np.cumsum(n_issue) - n_issue, n_issue)
        persons.append(p)
        days.append(first[p] + k * interval)
        bnf.append(np.full(p.size, code_of[drug]))
    # rescue courses for moderate exacerbations: prednisolone with an antibiotic
    mod = ~resp.exac_severe
    rp = np.repeat(resp.exac_person[mod], 2)
    rd = np.repeat(resp.exac_day[mod].astype(np.int64) + start, 2)
    persons.append(rp)
    days.append(rd)
    bnf.append(np.tile(np.array([code_of[c] for c in RESCUE_PACK]), int(mod.sum())))
    person = np.concatenate(persons)
    day = np.concatenate(days).astype(np.int64)
    code = np.concatenate(bnf)
    ok = day <= exit_[person]
    person, day, code = person[ok], day[ok], code[ok]
    order = sort_order(day, person, code)
    return pa.table(
        {
            "prescription_id": id_array("RX", person.size),
            "nhs_number": take(nhs, person[order]),
            "issue_date": date_array(day[order]),
            "bnf_code": take(vocab, code[order]),
        }
    )


def social_care(people: People, geo: Geography, cal: Calendar, rng: np.random.Generator) -> pa.Table:
    start, end = int(cal.days[0]), int(cal.days[-1])
    age = people.age_at(end)
    dep = deprivation(geo.imd_decile[people.lsoa])
    p = np.clip(
        0.002
        + 0.06 * (people.frailty >= 2) * (age >= 65)
        + 0.08 * (people.frailty >= 4)
        + 0.03 * (age >= 85)
        + 0.01 * dep,
        0,
        0.6,
    )
    who = np.flatnonzero((rng.random(people.n) < p) & (people.exit > start))
    lo = np.maximum(people.reg_start[who], start - 365)
    hi = np.maximum(np.minimum(people.exit[who], end), lo + 1)
    s = (lo + rng.random(who.size) * (hi - lo)).astype(np.int64)
    dur = rng.exponential(300, who.size).astype(np.int64) + 14
    e = s + dur
    ongoing = e > np.minimum(people.exit[who], end)
    e = np.where(ongoing & (people.exit[who] <= end), people.exit[who], e)
    open_ = e > end
    service = rng.choice(np.array(SOCIAL_CARE_SERVICES), who.size, p=[0.45, 0.15, 0.1, 0.15, 0.1, 0.05])
    order = sort_order(s, who)
    return pa.table(
        {
            "package_id": id_array("SC", who.size),
            "nhs_number": people.nhs_number[who[order]],
            "service_type": service[order],
            "start_date": date_array(s[order]),
            "end_date": date_array(e[order], null=open_[order]),
        }
    )


def housing(people: People, geo: Geography, cal: Calendar, rng: np.random.Generator) -> pa.Table:
    start, end = int(cal.days[0]), int(cal.days[-1])
    dep = deprivation(geo.imd_decile[people.lsoa])
    rates = {
        "temporary_accommodation": 0.002 + 0.01 * dep,
        "overcrowding": 0.01 + 0.05 * dep,
        "homeless": 0.0005 + 0.003 * dep,
        "poor_condition": 0.005 + 0.03 * dep,
    }
    ps, fl = [], []
    for flag in HOUSING_FLAGS:
        who = np.flatnonzero(rng.random(people.n) < rates[flag])
        ps.append(who)
        fl.append(np.full(who.size, flag))
    person = np.concatenate(ps)
    flag = np.concatenate(fl)
    lo = np.maximum(people.reg_start[person], start)
    hi = np.maximum(np.minimum(people.exit[person], end), lo + 1)
    day = (lo + rng.random(person.size) * (hi - lo)).astype(np.int64)
    order = np.lexsort((flag, person, day))  # few rows; flags are text
    return pa.table(
        {
            "nhs_number": people.nhs_number[person[order]],
            "flag": flag[order],
            "recorded_date": date_array(day[order]),
        }
    )


def home_monitoring(resp: Respiratory, cal: Calendar, nhs: pa.Array) -> pa.Table:
    r = resp.readings
    day = r["day"].astype(np.int64) + int(cal.days[0])
    person = r["person"].astype(np.int64)
    order = sort_order(day, person)

    def col(x: np.ndarray, dtype: type) -> pa.Array:
        x = x[order]
        return pa.array(np.nan_to_num(x).astype(dtype), mask=np.isnan(x))

    return pa.table(
        {
            "nhs_number": take(nhs, person[order]),
            "reading_date": date_array(day[order]),
            "spo2": col(r["spo2"], np.int16),
            "fev1_pct_predicted": col(r["fev1"], np.float64),
            "peak_flow_pct_predicted": col(r["pef"], np.float64),
            "heart_rate": col(r["hr"], np.int16),
            "symptom_score": col(r["sym"], np.int16),
            "steps": col(r["steps"], np.int32),
        }
    )
