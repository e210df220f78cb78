"""Ground truth of the synthetic programme: who was offered and enrolled, each enrolled person's admissions
with and without the programme month by month, and the true effect on the enrolled."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from features.synthetic.calendar import Calendar
from features.synthetic.intervention import NOT_YET, Programme


def programme_truth(programme: Programme, people, resp, cal: Calendar) -> dict[str, pa.Table]:
    """Tables `programme_offers`, `programme_outcomes`, `programme_effect`, `programme_scores` (the first
    offer month's score of everyone in the taking-part practices) and, with a holdout, `programme_holdout` (who
    the rule picked but held out, when, and their score) for `truth/`.

    Severe respiratory exacerbations (simulated apart, untouched by the programme) are emergency admissions
    too: they are added to both the factual and the counterfactual count of the month they fall in."""
    month_day = cal.days[cal.month_start[:-1]].astype(np.int32)
    offered = np.flatnonzero(programme.offer_month != NOT_YET)
    enrol = programme.enrol_month[offered]
    offers = pa.table({
        "nhs_number": people.nhs_number[offered],
        "offer_date": pa.array(month_day[programme.offer_month[offered]], pa.date32()),
        "enrolled": enrol != NOT_YET,
        "enrol_date": pa.array(month_day[np.maximum(enrol, 0)], pa.date32(), mask=enrol == NOT_YET),
        "score": programme.offer_score[offered],
    })
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
    outcomes = pa.table({
        "nhs_number": people.nhs_number[pm["person"]],
        "month": pa.array(month_day[pm["month"]], pa.date32()),
        "admissions": admissions.astype(np.int32),
        "admissions_counterfactual": counterfactual.astype(np.int32),
    })
    person_years = key.size / 12
    f, cf = int(admissions.sum()), int(counterfactual.sum())
    effect = pa.table({
        "offered": [int(offered.size)], "enrolled": [int((enrol != NOT_YET).sum())],
        "factor": [programme.cfg.factor], "person_years": [person_years],
        "admissions": [f], "admissions_counterfactual": [cf],
        "rate_per_person_year": [f / person_years if person_years else float("nan")],
        "counterfactual_rate_per_person_year": [cf / person_years if person_years else float("nan")],
        "relative_effect": [f / cf - 1 if cf else float("nan")],
    })
    first = max(programme.first_month, 0)
    scores = pa.table({
        "nhs_number": people.nhs_number[programme.first_people],
        "month": pa.array(np.full(programme.first_people.size, month_day[first]), pa.date32()),
        "score": programme.first_scores,
    })
    tables = {"programme_offers": offers, "programme_outcomes": outcomes, "programme_effect": effect,
              "programme_scores": scores}
    if programme.cfg.holdout > 0:
        held = np.flatnonzero(programme.held_month != NOT_YET)
        tables["programme_holdout"] = pa.table({
            "nhs_number": people.nhs_number[held],
            "held_date": pa.array(month_day[programme.held_month[held]], pa.date32()),
            "score": programme.offer_score[held]})
    return tables
