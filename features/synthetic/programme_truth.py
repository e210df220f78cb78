"""Ground truth of the synthetic programme: who was offered and enrolled, each enrolled person's admissions and
bed-days with and without the programme month by month (with their broad ethnic group and whether they live in
a Core20 area), and the true effect on the enrolled, overall and by group.

Bed-days are counted as the panel counts them: each emergency admission's stay, by the month of admission, a stay
still going at the end of the data counted to its last day. The
programme changes how often people are admitted, not how long they stay, so the stays of the admissions it
prevented (or added) are drawn from the extract's own length-of-stay model for the person's age and frailty
that month (`tables.emergency_stays`, a seeded stream of its own); a death in hospital does not shorten them."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from features.sources.codes import BROAD_ETHNIC_GROUP
from features.synthetic.calendar import Calendar
from features.synthetic.intervention import NOT_YET, Programme
from features.synthetic.tables import emergency_stays, in_group


def _bed_days(pm: dict, people, spells: dict | None, cal: Calendar, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Factual bed-days of each enrolled person-month (their emergency stays admitted that month) and the
    counterfactual ones (plus the stays of admissions the programme prevented, less those it added)."""
    key = pm["person"].astype(np.int64) * cal.n_months + pm["month"]
    factual = np.zeros(key.size, np.int64)
    if spells is not None and key.size:
        em = spells["emergency"] & (spells["person"] < people.n)
        month = cal.month_of_day(spells["admit"][em] - int(cal.days[0]))
        skey = spells["person"][em].astype(np.int64) * cal.n_months + month
        last = int(cal.days[-1])  # a stay still going at the end of the data counts to its last day (as the panel)
        stay = (np.minimum(spells["discharge"], last) - spells["admit"])[em]
        order = np.argsort(key)
        pos = np.minimum(np.searchsorted(key[order], skey), key.size - 1)
        hit = key[order][pos] == skey
        np.add.at(factual, order[pos[hit]], stay[hit])
    extra = pm["counterfactual"].astype(np.int64) - pm["admissions"]
    who = np.repeat(np.arange(key.size), np.abs(extra))
    day = cal.days[cal.month_start[pm["month"][who]]]
    person = pm["person"][who]
    age = (day - people.birth[person]) / 365.25
    stays = np.minimum(
        emergency_stays(np.random.default_rng([seed, 23, 5]), age, people.frailty[person]), int(cal.days[-1]) - day
    )
    change = np.zeros(key.size, np.int64)
    np.add.at(change, who, np.sign(extra[who]) * stays)
    return factual, np.maximum(factual + change, 0)


def _effect(f: float, cf: float, bf: float, bcf: float, person_years: float) -> dict:
    rate = lambda x: x / person_years if person_years else float("nan")  # noqa: E731
    return {
        "person_years": person_years,
        "admissions": int(f),
        "admissions_counterfactual": int(cf),
        "rate_per_person_year": rate(f),
        "counterfactual_rate_per_person_year": rate(cf),
        "relative_effect": f / cf - 1 if cf else float("nan"),
        "bed_days": int(bf),
        "bed_days_counterfactual": int(bcf),
        "bed_days_per_person_year": rate(bf),
        "counterfactual_bed_days_per_person_year": rate(bcf),
        "bed_days_relative_effect": bf / bcf - 1 if bcf else float("nan"),
    }


def programme_truth(
    programme: Programme, people, geo, resp, cal: Calendar, spells: dict | None = None, seed: int = 0
) -> dict[str, pa.Table]:
    """Tables `programme_offers`, `programme_outcomes`, `programme_effect`, `programme_scores` (the first
    offer month's score of everyone in the taking-part practices) and, with a holdout, `programme_holdout` (who
    the rule picked but held out, when, and their score) for `truth/`.

    Severe respiratory exacerbations (simulated apart, untouched by the programme) are emergency admissions
    too: they are added to both the factual and the counterfactual count of the month they fall in."""
    month_day = cal.days[cal.month_start[:-1]].astype(np.int32)
    offered = np.flatnonzero(programme.offer_month != NOT_YET)
    enrol = programme.enrol_month[offered]
    offers = pa.table(
        {
            "nhs_number": people.nhs_number[offered],
            "offer_date": pa.array(month_day[programme.offer_month[offered]], pa.date32()),
            "enrolled": enrol != NOT_YET,
            "enrol_date": pa.array(month_day[np.maximum(enrol, 0)], pa.date32(), mask=enrol == NOT_YET),
            "score": programme.offer_score[offered],
        }
    )
    pm = programme.person_months()
    severe = resp.exac_severe
    r_person = resp.exac_person[severe].astype(np.int64)
    r_month = np.searchsorted(cal.month_start, resp.exac_day[severe], side="right") - 1
    key = pm["person"].astype(np.int64) * cal.n_months + pm["month"]
    order = np.argsort(key)
    pos = np.searchsorted(key[order], r_person * cal.n_months + r_month)
    pos = np.minimum(pos, max(key.size - 1, 0))
    hit = key.size > 0
    resp_count = np.zeros(key.size, np.int64)
    if hit:
        match = key[order][pos] == r_person * cal.n_months + r_month
        np.add.at(resp_count, order[pos[match]], 1)
    admissions = pm["admissions"] + resp_count
    counterfactual = pm["counterfactual"] + resp_count
    bed_days, bed_days_cf = _bed_days(pm, people, spells, cal, seed)  # respiratory stays are in both (in spells)
    broad = np.vectorize(BROAD_ETHNIC_GROUP.get, otypes=[object])(people.ethnicity[pm["person"]])
    core20 = in_group("core20", people, geo)[pm["person"]]
    outcomes = pa.table(
        {
            "nhs_number": people.nhs_number[pm["person"]],
            "month": pa.array(month_day[pm["month"]], pa.date32()),
            "admissions": admissions.astype(np.int32),
            "admissions_counterfactual": counterfactual.astype(np.int32),
            "bed_days": bed_days.astype(np.int32),
            "bed_days_counterfactual": bed_days_cf.astype(np.int32),
            "ethnic_group": pa.array(broad.astype(str)),
            "core20": core20,
            "factor": programme.factor_of[pm["person"]],
        }
    )
    person_years = key.size / 12
    effect = pa.table(
        {
            k: [v]
            for k, v in {
                "offered": int(offered.size),
                "enrolled": int((enrol != NOT_YET).sum()),
                "factor": programme.cfg.factor,
                **_effect(admissions.sum(), counterfactual.sum(), bed_days.sum(), bed_days_cf.sum(), person_years),
            }.items()
        }
    )
    rows = []
    for kind, labels in (("ethnic_group", broad.astype(str)), ("core20", np.where(core20, "core20", "rest"))):
        for label in sorted(set(labels)):
            m = labels == label
            rows.append(
                {
                    "grouping": kind,
                    "group": label,
                    **_effect(
                        admissions[m].sum(),
                        counterfactual[m].sum(),
                        bed_days[m].sum(),
                        bed_days_cf[m].sum(),
                        m.sum() / 12,
                    ),
                }
            )
    by_group = pa.Table.from_pylist(rows) if rows else None
    first = max(programme.first_month, 0)
    scores = pa.table(
        {
            "nhs_number": people.nhs_number[programme.first_people],
            "month": pa.array(np.full(programme.first_people.size, month_day[first]), pa.date32()),
            "score": programme.first_scores,
        }
    )
    tables = {
        "programme_offers": offers,
        "programme_outcomes": outcomes,
        "programme_effect": effect,
        "programme_scores": scores,
    }
    if by_group is not None:
        tables["programme_effect_by_group"] = by_group
    if programme.cfg.holdout > 0:
        held = np.flatnonzero(programme.held_month != NOT_YET)
        tables["programme_holdout"] = pa.table(
            {
                "nhs_number": people.nhs_number[held],
                "held_date": pa.array(month_day[programme.held_month[held]], pa.date32()),
                "score": programme.offer_score[held],
            }
        )
    return tables
