"""The evaluation panel from the warehouse: one row per person per enrolment month (`cohort`), for each enrolled
person at their own month and for every person not (yet) enrolled who was registered and alive then, with the
covariates matched on and the outcomes 12 months before and after. A comparison person enrolled later is still
followed for the whole 12 months, as in a trial of "enrol now" against "not now": choosing comparisons among the
never-enrolled would condition on the future (those who stay well enough never to be enrolled), and stopping a
comparison's follow-up at their own enrolment would drop exactly the months when their risk peaked. The price is
some dilution towards no effect when comparisons are enrolled within the year.

Outcomes: emergency admissions (`admissions`), their bed-days (`bed_days`, by admission date) and A&E
attendances (`ae`). Person-years are cut at death, deregistration and the end of the data; only cohorts whose
12 months of follow-up end within the data are used.
"""

from __future__ import annotations

from datetime import date

import duckdb
import numpy as np
import pandas as pd

from features.sources.codes import BROAD_ETHNIC_GROUP, CONDITIONS, EMERGENCY_ADMISSION_METHODS

OUTCOMES = ("admissions", "bed_days", "ae")
CONDITION_COLUMNS = [f"has_{c.key}" for c in CONDITIONS]
COVARIATES = ["age", "male", "imd_decile", "n_conditions", *CONDITION_COLUMNS, "admissions_1m", "admissions_3m",
              "admissions_6m", "pre_admissions", "recency_weighted", "pre_bed_days", "pre_ae"]
_PRIOR = ("admissions_1m", "admissions_3m", "admissions_6m", "pre_admissions", "recency_weighted")
PROPENSITY_TERMS = [*COVARIATES, "age_sq", "age_75", "multimorbid", "recency_saturated", *(f"log_{c}" for c in _PRIOR),
                    *(f"old_{c}" for c in _PRIOR)]


class EnrolmentError(ValueError):
    """An enrolment file that cannot be used (missing columns, unknown people, bad dates)."""


def build_panel(con: duckdb.DuckDBPyConnection, enrolment: pd.DataFrame, end: date | None = None,
                min_age: int = 18) -> pd.DataFrame:
    """The panel for `enrolment` (columns person_id, enrol_date) from the linked tables on `con`."""
    missing = {"person_id", "enrol_date"} - set(enrolment.columns)
    if missing:
        raise EnrolmentError(f"enrolment: missing column(s) {sorted(missing)} (need person_id, enrol_date)")
    enrol = pd.DataFrame({"person_id": pd.to_numeric(enrolment["person_id"], errors="coerce"),
                          "enrol_date": pd.to_datetime(enrolment["enrol_date"], errors="coerce")})
    bad = enrol.index[enrol.isna().any(axis=1)]
    if len(bad):
        raise EnrolmentError(f"enrolment row {int(bad[0]) + 1}: person_id must be a whole number and enrol_date a "
                             "date (YYYY-MM-DD)")
    if enrol["person_id"].duplicated().any():
        row = int(enrol.index[enrol["person_id"].duplicated()][0]) + 1
        raise EnrolmentError(f"enrolment row {row}: the person is enrolled twice (one enrolment per person)")
    con.register("enrol_in", enrol.astype({"person_id": "int64"}))
    known = con.execute("SELECT count(*) FROM enrol_in e SEMI JOIN patients p USING (person_id)").fetchone()[0]
    if known < len(enrol):
        raise EnrolmentError(f"enrolment: {len(enrol) - known} of {len(enrol)} person ids are not in the warehouse "
                             "(ids must be the warehouse's pseudonyms)")
    methods = ", ".join(f"'{m}'" for m in EMERGENCY_ADMISSION_METHODS)
    if end is None:
        end = con.execute(f"SELECT max(admission_date) FROM apc_spells WHERE admission_method IN ({methods})").fetchone()[0]
    conditions = ",\n".join(f"max(CASE WHEN g.code = '{c.snomed}' THEN 1 ELSE 0 END) AS has_{c.key}" for c in CONDITIONS)
    snomeds = ", ".join(f"'{c.snomed}'" for c in CONDITIONS)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE enrol AS
        SELECT person_id, date_trunc('month', enrol_date)::DATE AS cohort FROM enrol_in;
        CREATE OR REPLACE TEMP TABLE cohorts AS
        SELECT DISTINCT cohort FROM enrol WHERE cohort + INTERVAL 12 MONTH <= DATE '{end}' + INTERVAL 1 DAY;
        CREATE OR REPLACE TEMP TABLE base AS
        SELECT c.cohort, p.person_id, coalesce(e.cohort = c.cohort, false)::INTEGER AS treated,
               year(c.cohort) - p.year_of_birth AS age, (p.sex = 'M')::INTEGER AS male,
               coalesce(i.imd_decile, 5) AS imd_decile, coalesce(p.ethnic_category, 'Z') AS ethnic_category,
               greatest(c.cohort - INTERVAL 12 MONTH, p.registration_start)::DATE AS pre_start,
               least(c.cohort + INTERVAL 12 MONTH, p.date_of_death, p.registration_end,
                     DATE '{end}' + INTERVAL 1 DAY)::DATE AS post_end
        FROM cohorts c
        JOIN patients p ON p.registration_start <= c.cohort AND coalesce(p.registration_end, DATE '9999-01-01') > c.cohort
             AND coalesce(p.date_of_death, DATE '9999-01-01') > c.cohort
        LEFT JOIN imd i USING (lsoa11)
        LEFT JOIN enrol e ON e.person_id = p.person_id
        WHERE (e.person_id IS NULL OR e.cohort >= c.cohort) AND year(c.cohort) - p.year_of_birth >= {int(min_age)};
        CREATE OR REPLACE TEMP TABLE em AS
        SELECT person_id, admission_date AS day,
               date_diff('day', admission_date, coalesce(discharge_date, DATE '{end}')) AS bed_days
        FROM apc_spells WHERE admission_method IN ({methods});
        CREATE OR REPLACE TEMP TABLE ae AS SELECT person_id, arrival_time::DATE AS day FROM ae_attendances;
    """)
    panel = con.execute(f"""
        WITH adm AS (
            SELECT b.cohort, b.person_id,
                   count(*) FILTER (WHERE e.day < b.cohort AND e.day >= b.cohort - INTERVAL 1 MONTH) AS admissions_1m,
                   count(*) FILTER (WHERE e.day < b.cohort AND e.day >= b.cohort - INTERVAL 3 MONTH) AS admissions_3m,
                   count(*) FILTER (WHERE e.day < b.cohort AND e.day >= b.cohort - INTERVAL 6 MONTH) AS admissions_6m,
                   count(*) FILTER (WHERE e.day < b.cohort) AS pre_admissions,
                   coalesce(sum(exp(-date_diff('day', e.day, b.cohort) / 91.31)) FILTER (WHERE e.day < b.cohort), 0)
                       AS recency_weighted,
                   coalesce(sum(e.bed_days) FILTER (WHERE e.day < b.cohort), 0) AS pre_bed_days,
                   count(*) FILTER (WHERE e.day >= b.cohort) AS post_admissions,
                   coalesce(sum(e.bed_days) FILTER (WHERE e.day >= b.cohort), 0) AS post_bed_days
            FROM base b JOIN em e ON e.person_id = b.person_id AND e.day >= b.pre_start AND e.day < b.post_end
            GROUP BY ALL),
        aes AS (
            SELECT b.cohort, b.person_id, count(*) FILTER (WHERE a.day < b.cohort) AS pre_ae,
                   count(*) FILTER (WHERE a.day >= b.cohort) AS post_ae
            FROM base b JOIN ae a ON a.person_id = b.person_id AND a.day >= b.pre_start AND a.day < b.post_end
            GROUP BY ALL),
        cond AS (
            SELECT b.cohort, b.person_id, {conditions}
            FROM base b JOIN gp_events g ON g.person_id = b.person_id AND g.event_date < b.cohort
            WHERE g.code IN ({snomeds}) GROUP BY ALL)
        SELECT b.cohort, b.person_id, b.treated, b.age, b.male, b.imd_decile, b.ethnic_category,
               date_diff('day', b.pre_start, b.cohort) / 365.25 AS pre_years,
               date_diff('day', b.cohort, b.post_end) / 365.25 AS post_years,
               {", ".join(f"coalesce(c.has_{c.key}, 0) AS has_{c.key}" for c in CONDITIONS)},
               coalesce(a.admissions_1m, 0) AS admissions_1m, coalesce(a.admissions_3m, 0) AS admissions_3m,
               coalesce(a.admissions_6m, 0) AS admissions_6m, coalesce(a.recency_weighted, 0) AS recency_weighted,
               coalesce(a.pre_admissions, 0) AS pre_admissions, coalesce(a.post_admissions, 0) AS post_admissions,
               coalesce(a.pre_bed_days, 0) AS pre_bed_days, coalesce(a.post_bed_days, 0) AS post_bed_days,
               coalesce(x.pre_ae, 0) AS pre_ae, coalesce(x.post_ae, 0) AS post_ae
        FROM base b LEFT JOIN adm a USING (cohort, person_id) LEFT JOIN aes x USING (cohort, person_id)
        LEFT JOIN cond c USING (cohort, person_id)
        ORDER BY b.cohort, b.person_id""").df()
    panel["n_conditions"] = panel[CONDITION_COLUMNS].sum(axis=1)
    panel["ethnic_group"] = panel["ethnic_category"].map(BROAD_ETHNIC_GROUP).fillna("Unknown")
    panel["deprivation_quintile"] = (panel["imd_decile"] + 1) // 2
    # prior admissions in bands (0, 1, 2, 3, 4-5, 6-8, 9+) and in the last 3 months (0, 1, 2+), matched exactly:
    # people enrolled after many admissions are otherwise compared with people who had far fewer
    panel["prior_band"] = np.searchsorted(np.array([1, 2, 3, 4, 6, 9]), panel["pre_admissions"].to_numpy(), side="right")
    panel["recent"] = panel["admissions_3m"].clip(upper=2)
    # terms for the propensity model only: risk rises non-linearly with age, compounds with three or more
    # conditions, and recent admissions weigh more than older ones
    panel["age_sq"] = panel["age"] ** 2 / 100
    panel["age_75"] = (panel["age"] >= 75).astype(int)
    panel["multimorbid"] = (panel["n_conditions"] >= 3).astype(int)
    panel["recency_saturated"] = 1 - np.exp(-panel["recency_weighted"])
    for col in _PRIOR:
        panel[f"log_{col}"] = np.log1p(panel[col])
        panel[f"old_{col}"] = panel[col] * panel["age_75"]
    return panel
