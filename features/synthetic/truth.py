"""The synthetic ICS's ground truth of its outcomes, and how well the truth describes what happened.

Each outcome the generator simulates has a truth table under `truth/`, named for the outcome (the labels of
`features.cohorts` use the same words), of (nhs_number, a date, p_true):

* `emergency_12m`: P(an emergency admission in the 12 months from an index date), exact for the simulation;
* `acsc_12m`: P(an emergency admission for an ambulatory care sensitive condition in those 12 months)
  (`features.synthetic.acsc`);
* `exacerbation_14d`: P(a COPD or asthma exacerbation in the 14 days after a monitored day).

`persons` (latent attributes) and `defects` (injected on purpose) are truth too. These go into the warehouse
(`WAREHOUSE`, listed in the folder's marker for the loader); a programme's truth stays in the folder.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pyarrow as pa

from features.sources.codes import CONDITION_KEYS
from features.synthetic.calendar import Calendar, to_days
from features.synthetic.population import NEVER
from phm.core.stats import auroc

WAREHOUSE = ("emergency_12m", "acsc_12m", "exacerbation_14d", "persons", "defects")


def with_respiratory(persons: np.ndarray, p: np.ndarray, resp, day: int) -> np.ndarray:
    """`p` combined with the person's chance of an emergency COPD/asthma admission in the 12 months (independent)."""
    p = p.copy()
    r_persons, p_resp = resp.truth_admission.get(day, (np.empty(0, np.int32), np.empty(0)))
    pos = np.searchsorted(persons, r_persons)
    ok = (pos < persons.size) & (persons[np.minimum(pos, persons.size - 1)] == r_persons)
    p[pos[ok]] = 1 - (1 - p[pos[ok]]) * (1 - p_resp[ok])
    return p


def _yearly(truth: dict, people, resp) -> pa.Table:
    nhs, idx_d, p_true = [], [], []
    for day, (persons, p_gen) in sorted(truth.items()):
        nhs.append(people.nhs_number[persons])
        idx_d.append(np.full(persons.size, day, dtype=np.int32))
        p_true.append(with_respiratory(persons, p_gen, resp, day))
    return pa.table(
        {
            "nhs_number": np.concatenate(nhs),
            "index_date": pa.array(np.concatenate(idx_d), pa.date32()),
            "p_true": np.concatenate(p_true),
        }
    )


def truth_tables(people, act, resp, cal: Calendar, hidden: np.ndarray, defects: list[dict]) -> dict[str, pa.Table]:
    """The warehouse's truth tables (`WAREHOUSE`)."""
    tf = resp.truth_flare
    flare = pa.table(
        {
            "nhs_number": people.nhs_number[tf["person"].astype(np.int64)],
            "date": pa.array((tf["day"].astype(np.int64) + int(cal.days[0])).astype(np.int32), pa.date32()),
            "p_true": tf["p"].astype(np.float32),
        }
    )
    persons = pa.table(
        {
            "nhs_number": people.nhs_number,
            "true_ethnic_category": people.ethnicity,
            "latent_health": people.latent,
            "frailty_deficits": people.frailty.astype(np.int16),
            "smoker": people.smoker,
            **{
                f"onset_{k}": pa.array(people.onset[:, j], pa.date32(), mask=people.onset[:, j] == NEVER)
                for j, k in enumerate(CONDITION_KEYS)
            },
            **{f"uncoded_{k}": hidden[:, j] for j, k in enumerate(CONDITION_KEYS)},
            "home_monitored": np.isin(np.arange(people.n), resp.monitored_person),
        }
    )
    return {
        "emergency_12m": _yearly(act.truth_emergency, people, resp),
        "acsc_12m": _yearly(act.truth_acsc, people, resp),
        "exacerbation_14d": flare,
        "persons": persons,
        "defects": pa.Table.from_pylist(
            defects,
            schema=pa.schema(
                [("table", pa.string()), ("row_number", pa.int64()), ("rule", pa.string()), ("column", pa.string())]
            ),
        ),
    }


def one_year_after(day: int) -> int:
    d = date(1970, 1, 1) + timedelta(days=day)
    return to_days(date(d.year + 1, d.month, d.day))


def _yearly_summary(truth: dict, people, resp, spells: dict, which: np.ndarray) -> dict:
    """Per index date: people, the observed rate of the outcome (`which` spells) in 12 months, the mean true
    probability and the oracle's AUROC, among people followed for 12 months or to death (movers are censored)."""
    out = {}
    for day, (persons, p_gen) in sorted(truth.items()):
        window_end = one_year_after(day)
        sel = (spells["admit"] >= day) & (spells["admit"] < window_end) & which
        had = np.isin(persons, spells["person"][sel])
        p = with_respiratory(persons, p_gen, resp, day)
        followed = people.exit_move[persons] >= window_end
        out[str(np.datetime64(day, "D"))] = {
            "persons": int(persons.size),
            "observed_rate": round(float(had[followed].mean()), 4),
            "mean_true_probability": round(float(p[followed].mean()), 4),
            "oracle_auroc": round(auroc(had[followed], p[followed]), 4),
        }
    return out


def outcome_summary(people, act, resp, spells: dict) -> dict:
    """Realism and oracle figures of each outcome (keys as the truth tables)."""
    em = spells["emergency"] & (spells["person"] < people.n)
    tf = resp.truth_flare
    flare = {}
    if tf["p"].size:
        # realised flare within (d, d+14]: the next exacerbation of the same person within 14 days
        key = np.sort(resp.exac_person.astype(np.int64) * 100_000 + resp.exac_day)
        day_key = tf["person"].astype(np.int64) * 100_000 + tf["day"]
        nxt = np.searchsorted(key, day_key + 1)
        hits = (nxt < key.size) & (key[np.minimum(nxt, key.size - 1)] <= day_key + 14)
        flare = {
            "person_days": int(tf["p"].size),
            "observed_rate_14d": round(float(hits.mean()), 4),
            "mean_true_probability": round(float(tf["p"].mean()), 4),
            "oracle_auroc": round(auroc(hits, tf["p"]), 4),
        }
    return {
        "emergency_12m": _yearly_summary(act.truth_emergency, people, resp, spells, em),
        "acsc_12m": _yearly_summary(act.truth_acsc, people, resp, spells, em & spells["acsc"]),
        "acsc_share_of_emergency_admissions": round(float(spells["acsc"][em].mean()) if em.any() else 0.0, 4),
        "exacerbation_14d": flare,
    }
