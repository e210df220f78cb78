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

Built columnar: DuckDB reads each table once (people, emergency admissions, A&E attendances, each person's first
record of each condition) and numpy lays out the person-months with compact integer types, so a 1,000,000-person
pool over two years of enrolment months (about 16 million rows) fits in under 2 GiB. The propensity model's extra
terms (`DERIVED`) are not stored: `design` computes them for the rows asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import duckdb
import numpy as np
import pandas as pd

from features.sources.codes import BROAD_ETHNIC_GROUP, CONDITIONS, EMERGENCY_ADMISSION_METHODS

OUTCOMES = ("admissions", "bed_days", "ae")
CONDITION_COLUMNS = [f"has_{c.key}" for c in CONDITIONS]
COVARIATES = [
    "age",
    "male",
    "imd_decile",
    "n_conditions",
    *CONDITION_COLUMNS,
    "admissions_1m",
    "admissions_3m",
    "admissions_6m",
    "pre_admissions",
    "recency_weighted",
    "pre_bed_days",
    "pre_ae",
]
_PRIOR = ("admissions_1m", "admissions_3m", "admissions_6m", "pre_admissions", "recency_weighted")


def _col(frame: pd.DataFrame, name: str) -> np.ndarray:
    return frame[name].to_numpy(float)


# terms for the propensity model only: risk rises non-linearly with age, compounds with three or more conditions,
# and recent admissions weigh more than older ones
DERIVED: dict[str, Callable[[pd.DataFrame], np.ndarray]] = {
    "age_sq": lambda f: _col(f, "age") ** 2 / 100,
    "age_75": lambda f: (_col(f, "age") >= 75).astype(float),
    "multimorbid": lambda f: (_col(f, "n_conditions") >= 3).astype(float),
    "recency_saturated": lambda f: 1 - np.exp(-_col(f, "recency_weighted")),
    **{f"log_{c}": (lambda f, c=c: np.log1p(_col(f, c))) for c in _PRIOR},
    **{f"old_{c}": (lambda f, c=c: _col(f, c) * (_col(f, "age") >= 75)) for c in _PRIOR},
}
PROPENSITY_TERMS = [*COVARIATES, *DERIVED]


def design(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The float matrix of `columns` for the rows of `frame`: its own columns, or a `DERIVED` term computed."""
    return np.column_stack([DERIVED[c](frame) if c not in frame.columns else _col(frame, c) for c in columns])


class EnrolmentError(ValueError):
    """An enrolment file that cannot be used (missing columns, unknown people, bad dates)."""


_NEVER = 2_932_532  # 9999-01-01 in days since 1970-01-01: no end date
_EPOCH = "DATE '1970-01-01'"


def _days(months: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of month starts given as datetime64[M]."""
    return months.astype("datetime64[D]").astype(np.int64)


def _check(con: duckdb.DuckDBPyConnection, enrolment: pd.DataFrame) -> pd.DataFrame:
    missing = {"person_id", "enrol_date"} - set(enrolment.columns)
    if missing:
        raise EnrolmentError(f"enrolment: missing column(s) {sorted(missing)} (need person_id, enrol_date)")
    enrol = pd.DataFrame(
        {
            "person_id": pd.to_numeric(enrolment["person_id"], errors="coerce"),
            "enrol_date": pd.to_datetime(enrolment["enrol_date"], errors="coerce"),
        }
    )
    bad = enrol.index[enrol.isna().any(axis=1)]
    if len(bad):
        raise EnrolmentError(
            f"enrolment row {int(bad[0]) + 1}: person_id must be a whole number and enrol_date a date (YYYY-MM-DD)"
        )
    if enrol["person_id"].duplicated().any():
        row = int(enrol.index[enrol["person_id"].duplicated()][0]) + 1
        raise EnrolmentError(f"enrolment row {row}: the person is enrolled twice (one enrolment per person)")
    enrol = enrol.astype({"person_id": "int64"})
    con.register("enrol_in", enrol)
    known = con.execute("SELECT count(*) FROM enrol_in e SEMI JOIN patients p USING (person_id)").fetchone()[0]
    if known < len(enrol):
        raise EnrolmentError(
            f"enrolment: {len(enrol) - known} of {len(enrol)} person ids are not in the warehouse "
            "(ids must be the warehouse's pseudonyms)"
        )
    return enrol


def _people(con: duckdb.DuckDBPyConnection) -> dict[str, np.ndarray]:
    """One entry per person, sorted by person_id; dates as days since 1970 (missing start or birth year: never
    eligible, missing end or death: none)."""
    return con.execute(f"""
        SELECT p.person_id, coalesce(p.year_of_birth, 99999)::INTEGER AS year_of_birth,
               coalesce(p.sex = 'M', false)::TINYINT AS male, coalesce(i.imd_decile, 5)::TINYINT AS imd_decile,
               coalesce(p.ethnic_category, 'Z') AS ethnic_category,
               coalesce(date_diff('day', {_EPOCH}, p.registration_start), {_NEVER})::INTEGER AS reg_start,
               coalesce(date_diff('day', {_EPOCH}, p.registration_end), {_NEVER})::INTEGER AS reg_end,
               coalesce(date_diff('day', {_EPOCH}, p.date_of_death), {_NEVER})::INTEGER AS death
        FROM patients p LEFT JOIN imd i USING (lsoa11) ORDER BY p.person_id""").fetchnumpy()


def _events(con: duckdb.DuckDBPyConnection, sql: str, ids: np.ndarray) -> dict[str, np.ndarray]:
    """Events from `sql` (person_id, day, ...) as person positions in `ids`, sorted by day (unknown people dropped)."""
    ev = con.execute(sql + " ORDER BY day").fetchnumpy()
    pos = np.searchsorted(ids, ev["person_id"])
    known = (pos < ids.size) & (ids[np.minimum(pos, ids.size - 1)] == ev["person_id"])
    out = {k: np.asarray(v)[known] for k, v in ev.items() if k != "person_id"}
    out["person"] = pos[known]
    return out


def _window(ev: dict[str, np.ndarray], lo: int, hi: int) -> dict[str, np.ndarray]:
    a, b = np.searchsorted(ev["day"], [lo, hi])
    return {k: v[a:b] for k, v in ev.items()}


_FLOATS = ("recency_weighted", "pre_bed_days", "post_bed_days")


def _counts(
    ev: dict[str, np.ndarray], at: np.ndarray, pre_start: np.ndarray, post_end: np.ndarray, month: np.datetime64
) -> dict[str, np.ndarray]:
    """Per row of one month (`at`: each person's row or -1), the events within the row's window before and after
    the month: counts in the last 1, 3 and 6 months, before, after, recency-weighted, and bed-days if given."""
    c, n = int(_days(month)), pre_start.size
    r = at[ev["person"]]
    day = ev["day"].astype(np.int64)
    keep = r >= 0
    keep[keep] = (day[keep] >= pre_start[r[keep]]) & (day[keep] < post_end[r[keep]])
    r, day = r[keep], day[keep]
    pre, post = day < c, day >= c

    def count(mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(r[mask], weights=None if weights is None else weights[mask], minlength=n)

    out = {f"admissions_{k}m": count(pre & (day >= _days(month - k))) for k in (1, 3, 6)}
    out |= {"pre_admissions": count(pre), "post_admissions": count(post)}
    out["recency_weighted"] = count(pre, np.exp(-(c - day) / 91.31))
    if "bed_days" in ev:
        bed = ev["bed_days"][keep].astype(np.int64)
        out |= {"pre_bed_days": count(pre, bed), "post_bed_days": count(post, bed)}
    return out


def build_panel(
    con: duckdb.DuckDBPyConnection, enrolment: pd.DataFrame, end: date | None = None, min_age: int = 18
) -> pd.DataFrame:
    """The panel for `enrolment` (columns person_id, enrol_date) from the linked tables on `con`."""
    enrol = _check(con, enrolment)
    methods = ", ".join(f"'{m}'" for m in EMERGENCY_ADMISSION_METHODS)
    if end is None:
        end = con.execute(
            f"SELECT max(admission_date) FROM apc_spells WHERE admission_method IN ({methods})"
        ).fetchone()[0]
    end_day = int((np.datetime64(end, "D") - np.datetime64("1970-01-01", "D")).astype(np.int64))
    people = _people(con)
    ids = np.asarray(people["person_id"])
    enrol_month = np.full(ids.size, np.iinfo(np.int64).max)
    enrol_month[np.searchsorted(ids, enrol["person_id"].to_numpy())] = _days(
        enrol["enrol_date"].to_numpy().astype("datetime64[M]")
    )
    months = np.unique(enrol["enrol_date"].to_numpy().astype("datetime64[M]"))
    months = months[_days(months + 12) <= end_day + 1]
    em = _events(
        con,
        f"""SELECT person_id, date_diff('day', {_EPOCH}, admission_date)::INTEGER AS day,
                   date_diff('day', admission_date, coalesce(discharge_date, DATE '{end}'))::INTEGER AS bed_days
            FROM apc_spells WHERE admission_method IN ({methods}) AND person_id IS NOT NULL
            AND admission_date IS NOT NULL""",
        ids,
    )
    ae = _events(
        con,
        f"""SELECT person_id, date_diff('day', {_EPOCH}, arrival_time::DATE)::INTEGER AS day FROM ae_attendances
            WHERE person_id IS NOT NULL AND arrival_time IS NOT NULL""",
        ids,
    )
    snomeds = ", ".join(f"'{c.snomed}'" for c in CONDITIONS)
    first = con.execute(f"""
        SELECT person_id, code, date_diff('day', {_EPOCH}, min(event_date))::INTEGER AS day FROM gp_events
        WHERE code IN ({snomeds}) AND event_date IS NOT NULL GROUP BY ALL""").fetchnumpy()
    onset = {}
    for c in CONDITIONS:
        pick = first["code"] == c.snomed
        day = np.full(ids.size, _NEVER, dtype=np.int64)
        pos = np.searchsorted(ids, first["person_id"][pick])
        known = (pos < ids.size) & (ids[np.minimum(pos, ids.size - 1)] == first["person_id"][pick])
        day[pos[known]] = first["day"][pick][known]
        onset[c.key] = day
    eth_codes, eth_names = pd.factorize(people["ethnic_category"])
    yob = np.asarray(people["year_of_birth"], np.int64)
    reg_start, reg_end, death = (np.asarray(people[k], np.int64) for k in ("reg_start", "reg_end", "death"))
    parts: dict[str, list[np.ndarray]] = {}

    def add(name: str, values: np.ndarray, dtype) -> None:
        parts.setdefault(name, []).append(np.asarray(values).astype(dtype, copy=False))

    for month in months:
        c = int(_days(month))
        lo, hi = int(_days(month - 12)), int(_days(month + 12))
        age = int(month.astype("datetime64[Y]").astype(int)) + 1970 - yob
        rows = np.flatnonzero(
            (reg_start <= c) & (reg_end > c) & (death > c) & (enrol_month >= c) & (age >= min_age)
        )  # enrolled later or never (never is the largest month)
        n = rows.size
        pre_start = np.maximum(lo, reg_start[rows])
        post_end = np.minimum.reduce([np.full(n, hi), death[rows], reg_end[rows], np.full(n, end_day + 1)])
        add("cohort", np.full(n, month.astype("datetime64[D]")), "datetime64[us]")
        add("person_id", ids[rows], np.int64)
        add("treated", enrol_month[rows] == c, np.int8)
        add("age", age[rows], np.int16)
        add("male", np.asarray(people["male"])[rows], np.int8)
        add("imd_decile", np.asarray(people["imd_decile"])[rows], np.int8)
        add("ethnic_category", eth_codes[rows], np.int16)
        add("pre_years", (c - pre_start) / 365.25, np.float64)
        add("post_years", (post_end - c) / 365.25, np.float64)
        for key, day in onset.items():
            add(f"has_{key}", day[rows] < c, np.int8)
        at = np.full(ids.size, -1, dtype=np.int64)
        at[rows] = np.arange(n)
        for name, values in _counts(_window(em, lo, hi), at, pre_start, post_end, month).items():
            add(name, values, np.float64 if name in _FLOATS else np.int16)
        ae_counts = _counts(_window(ae, lo, hi), at, pre_start, post_end, month)
        add("pre_ae", ae_counts["pre_admissions"], np.int16)
        add("post_ae", ae_counts["post_admissions"], np.int16)
    order = [
        "cohort",
        "person_id",
        "treated",
        "age",
        "male",
        "imd_decile",
        "ethnic_category",
        "pre_years",
        "post_years",
        *CONDITION_COLUMNS,
        "admissions_1m",
        "admissions_3m",
        "admissions_6m",
        "recency_weighted",
        "pre_admissions",
        "post_admissions",
        "pre_bed_days",
        "post_bed_days",
        "pre_ae",
        "post_ae",
    ]
    if not parts:
        empty = {k: [] for k in order}
        parts = {k: [np.array([], dtype=np.int64)] for k in empty}
        parts["cohort"] = [np.array([], dtype="datetime64[us]")]
    cols = {k: np.concatenate(parts.pop(k)) for k in order}
    groups = pd.Index(eth_names).map(lambda e: BROAD_ETHNIC_GROUP.get(e, "Unknown"))
    codes = cols["ethnic_category"]
    cols["ethnic_category"] = pd.Categorical.from_codes(codes, categories=pd.Index(eth_names))
    panel = pd.DataFrame(cols, copy=False)
    panel["n_conditions"] = np.sum([cols[c] for c in CONDITION_COLUMNS], axis=0, dtype=np.int8)
    group_codes, group_names = pd.factorize(np.asarray(groups)[codes] if codes.size else np.array([], object))
    panel["ethnic_group"] = pd.Categorical.from_codes(group_codes, categories=group_names)
    panel["deprivation_quintile"] = ((cols["imd_decile"] + 1) // 2).astype(np.int8)
    # prior admissions in bands (0, 1, 2, 3, 4-5, 6-8, 9+) and in the last 3 months (0, 1, 2+)
    panel["prior_band"] = np.searchsorted(np.array([1, 2, 3, 4, 6, 9]), cols["pre_admissions"], side="right").astype(
        np.int8
    )
    panel["recent"] = np.minimum(cols["admissions_3m"], 2).astype(np.int8)
    return panel
