"""Comparison people who cross over: enrolled themselves within their 12 months of follow-up as a comparison.

The panel follows a comparison person for the whole 12 months even if they are enrolled within them (choosing
among the never-enrolled would condition on the future). Their events on and after their own enrolment month
carry the programme's effect, so `estimators` needs them apart: `crossed_events` adds, per comparison row of a
matched panel, `post_<outcome>_crossed` (events from the person's own enrolment month to the end of that row's
follow-up, counted as the panel counts them), 0 for everyone else, and `crosses` (whether the row's person is
enrolled within it). Only the rows of the matched panel are looked up.
"""

from __future__ import annotations

from datetime import date

import duckdb
import numpy as np
import pandas as pd

from features.sources.codes import EMERGENCY_ADMISSION_METHODS

CROSSED = ("admissions", "bed_days", "ae")


def own_months(enrolment: pd.DataFrame) -> pd.Series:
    """Each enrolled person's enrolment month (its first day), indexed by person_id."""
    when = pd.to_datetime(enrolment["enrol_date"]).dt.to_period("M").dt.to_timestamp()
    return pd.Series(when.to_numpy(), index=pd.to_numeric(enrolment["person_id"]).astype("int64").to_numpy())


def crossed_events(
    con: duckdb.DuckDBPyConnection, panel: pd.DataFrame, enrolment: pd.DataFrame, end: date | None = None
) -> pd.DataFrame:
    """`panel` with `post_<outcome>_crossed` for every outcome: a comparison row's events on and after the person's
    own enrolment month and before the end of the row's follow-up (cohort + post_years); 0 for the enrolled and
    for comparison people not enrolled within their follow-up; and `crosses`, whether the row is such a person's. `end`: the last day of data, as for the panel."""
    out = panel.copy()
    out["crosses"] = False
    for o in CROSSED:
        out[f"post_{o}_crossed"] = 0.0
    own = out["person_id"].map(own_months(enrolment))
    cohort = pd.to_datetime(out["cohort"])
    stop = cohort + pd.to_timedelta(np.round(out["post_years"].to_numpy(float) * 365.25), unit="D")
    rows = np.flatnonzero(((out["treated"] == 0) & own.notna() & (own > cohort) & (own < stop)).to_numpy())
    if rows.size == 0:
        return out
    out.iloc[rows, out.columns.get_loc("crosses")] = True
    ask = pd.DataFrame(
        {
            "row": rows.astype("int64"),
            "person_id": out["person_id"].to_numpy()[rows].astype("int64"),
            "own": pd.to_datetime(own.to_numpy()[rows]).date,
            "stop": pd.to_datetime(stop.to_numpy()[rows]).date,
        }
    )
    methods = ", ".join(f"'{m}'" for m in EMERGENCY_ADMISSION_METHODS)
    con = con.cursor()  # a connection of its own: the caller's may hold an unfinished result
    if end is None:
        end = con.execute(
            f"SELECT max(admission_date) FROM apc_spells WHERE admission_method IN ({methods})"
        ).fetchall()[0][0]
    con.register("crossed_rows", ask)
    try:
        em = con.execute(f"""
            SELECT r.row, count(*) AS admissions,
                   sum(date_diff('day', s.admission_date, coalesce(s.discharge_date, DATE '{end}'))) AS bed_days
            FROM crossed_rows r JOIN apc_spells s ON s.person_id = r.person_id
                 AND s.admission_date >= r.own AND s.admission_date < r.stop
            WHERE s.admission_method IN ({methods}) GROUP BY r.row""").df()
        ae = con.execute("""
            SELECT r.row, count(*) AS ae
            FROM crossed_rows r JOIN ae_attendances a ON a.person_id = r.person_id
                 AND a.arrival_time::DATE >= r.own AND a.arrival_time::DATE < r.stop
            GROUP BY r.row""").df()
    finally:
        con.unregister("crossed_rows")
        con.close()
    col = out.columns.get_loc
    for frame, names in ((em, ("admissions", "bed_days")), (ae, ("ae",))):
        at = frame["row"].to_numpy("int64")
        for name in names:
            out.iloc[at, col(f"post_{name}_crossed")] = frame[name].to_numpy(float)
    return out
