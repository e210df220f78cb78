"""Daily demand series from the linked admissions data: emergency admissions, general and acute (G&A)
beds occupied and adult critical care beds occupied, per acute site and for the whole ICS, with the
bed capacity from the sites table.

Occupancy is a midnight census: a spell occupies a bed at the midnight that ends day d when it was
admitted on or before d and discharged after d (or not yet discharged). A spell's critical care days
are taken as its first days after admission (capped at its length); those midnights count as critical
care, the rest of its midnights as G&A. Computed with +1/-1 events and a running sum, so the cost
grows with spells, not spells x days. A planner's own series from a CSV are read by `features/planner_csv.py`.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd

METRICS = {
    "emergency_admissions": "Emergency admissions per day (admission methods 21-2D, 28)",
    "ga_beds_occupied": "General and acute beds occupied at midnight",
    "critical_care_beds_occupied": "Adult critical care beds occupied at midnight",
}
CAPACITY = {"ga_beds_occupied": "ga_beds", "critical_care_beds_occupied": "critical_care_beds"}
ICS = "ICS"  # the whole system: every site summed
WARM_UP_DAYS = 60


class SeriesSourceError(ValueError):
    """The warehouse lacks what the demand series need."""


def daily_series(warehouse: Path, start: date | None = None, end: date | None = None) -> pd.DataFrame:
    """Long table: date, site, metric, value, capacity (NaN for admissions). Includes site `ICS`."""
    if not warehouse.exists():
        raise SeriesSourceError(f"{warehouse}: no warehouse; run `phm data load` first")
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        missing = {"apc_spells", "sites"} - tables
        if missing:
            raise SeriesSourceError(f"{warehouse}: missing table(s) {sorted(missing)} needed for demand series")
        bounds = con.execute("SELECT min(admission_date), max(admission_date) FROM apc_spells").fetchone()
        if bounds[0] is None:
            raise SeriesSourceError(f"{warehouse}: apc_spells is empty")
        # spells admitted before the extract starts are missing, so the census needs a warm-up period
        first = start or bounds[0] + timedelta(days=WARM_UP_DAYS)
        last = end or _data_end(con, tables)
        params = {"first": first, "last": last}
        frame = con.execute(
            """
            WITH spells AS (
                SELECT site_code, admission_date AS adm,
                       coalesce(discharge_date, $last + 1) AS dis,
                       least(coalesce(critical_care_days, 0), date_diff('day', admission_date,
                             coalesce(discharge_date, $last + 1))) AS cc,
                       admission_method LIKE '2%' AS emergency
                FROM apc_spells WHERE admission_date <= $last),
            events AS (
                SELECT site_code, adm AS d, 'ga_beds_occupied' AS metric, 1 AS delta FROM spells WHERE dis > adm
                UNION ALL SELECT site_code, dis, 'ga_beds_occupied', -1 FROM spells WHERE dis > adm
                UNION ALL SELECT site_code, adm, 'critical_care_beds_occupied', 1 FROM spells WHERE cc > 0
                UNION ALL SELECT site_code, adm + CAST(cc AS INTEGER), 'critical_care_beds_occupied', -1 FROM spells WHERE cc > 0
                -- a critical care midnight is not also a G&A one: out of G&A on admission, back when critical care ends
                UNION ALL SELECT site_code, adm, 'ga_beds_occupied', -1 FROM spells WHERE cc > 0 AND dis > adm
                UNION ALL SELECT site_code, adm + CAST(cc AS INTEGER), 'ga_beds_occupied', 1 FROM spells WHERE cc > 0 AND dis > adm),
            days AS (SELECT CAST(range AS DATE) AS d FROM range(CAST($first AS DATE), CAST($last AS DATE) + 1, INTERVAL 1 DAY)),
            grid AS (SELECT d, site_code, metric FROM days, (SELECT site_code FROM sites),
                     (VALUES ('ga_beds_occupied'), ('critical_care_beds_occupied')) m(metric)),
            deltas AS (SELECT site_code, d, metric, sum(delta) AS delta FROM events GROUP BY ALL),
            census AS (
                SELECT g.d, g.site_code, g.metric,
                       sum(coalesce(x.delta, 0)) OVER (PARTITION BY g.site_code, g.metric ORDER BY g.d) AS value
                FROM grid g LEFT JOIN deltas x USING (site_code, d, metric)),
            before AS (SELECT site_code, metric, sum(delta) AS opening FROM events WHERE d < $first GROUP BY ALL),
            admissions AS (
                SELECT g.d, g.site_code, 'emergency_admissions' AS metric, count(s.adm) AS value
                FROM (SELECT d, site_code FROM days, sites) g
                LEFT JOIN spells s ON s.adm = g.d AND s.site_code = g.site_code AND s.emergency
                GROUP BY ALL)
            SELECT c.d AS date, c.site_code AS site, c.metric, c.value + coalesce(b.opening, 0) AS value
            FROM census c LEFT JOIN before b USING (site_code, metric)
            UNION ALL SELECT d, site_code, metric, value FROM admissions
            ORDER BY site, metric, date""",
            params,
        ).df()
        sites = con.execute("SELECT site_code AS site, ga_beds, critical_care_beds FROM sites").df()
    finally:
        con.close()
    frame["value"] = frame["value"].astype(float)
    frame["date"] = pd.to_datetime(frame["date"])
    total = frame.groupby(["date", "metric"], as_index=False)["value"].sum().assign(site=ICS)
    frame = pd.concat([frame, total[frame.columns]], ignore_index=True)
    caps = sites.melt(id_vars="site", var_name="cap_col", value_name="capacity")
    caps = pd.concat([caps, caps.groupby("cap_col", as_index=False)["capacity"].sum().assign(site=ICS)])
    caps["metric"] = caps["cap_col"].map({v: k for k, v in CAPACITY.items()})
    frame = frame.merge(caps[["site", "metric", "capacity"]], on=["site", "metric"], how="left")
    return frame.sort_values(["site", "metric", "date"]).reset_index(drop=True)


def nowcast_spells(warehouse: Path) -> pd.DataFrame:
    """Spells for the bed nowcast, one row each, pseudonymised and grouped, no person id: site, admission and
    discharge day (integers, days since 1970-01-01; discharge -1 = not yet), and a group label of age band
    at admission, emergency or not, and diagnosis group (the spells carry no specialty; the ICD-10 chapter
    of the primary diagnosis stands in for it)."""
    if not warehouse.exists():
        raise SeriesSourceError(f"{warehouse}: no warehouse; run `phm data load` first")
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        frame = con.execute("""
            SELECT s.site_code AS site,
                   CAST(date_diff('day', DATE '1970-01-01', s.admission_date) AS BIGINT) AS adm,
                   CAST(coalesce(date_diff('day', DATE '1970-01-01', s.discharge_date), -1) AS BIGINT) AS dis,
                   CASE WHEN p.year_of_birth IS NULL THEN 'age?'
                        WHEN year(s.admission_date) - p.year_of_birth < 18 THEN '0-17'
                        WHEN year(s.admission_date) - p.year_of_birth < 45 THEN '18-44'
                        WHEN year(s.admission_date) - p.year_of_birth < 65 THEN '45-64'
                        WHEN year(s.admission_date) - p.year_of_birth < 75 THEN '65-74'
                        WHEN year(s.admission_date) - p.year_of_birth < 85 THEN '75-84' ELSE '85+' END
                   || '|' || CASE WHEN s.admission_method LIKE '2%' THEN 'emergency' ELSE 'other' END
                   || '|' || CASE WHEN left(s.primary_diagnosis, 1) IN ('I', 'J', 'S', 'T', 'C', 'N', 'K', 'R')
                                  THEN left(s.primary_diagnosis, 1) ELSE 'other' END AS "group"
            FROM apc_spells s LEFT JOIN patients p USING (person_id)""").df()
    finally:
        con.close()
    return frame


def site_codes(warehouse: Path) -> list[str]:
    """The sites the warehouse knows (its `sites` table; none if it has none): a site may have no spells."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "sites" not in tables:
            return []
        return [
            str(r[0])
            for r in con.execute("SELECT DISTINCT site_code FROM sites WHERE site_code IS NOT NULL").fetchall()
        ]
    finally:
        con.close()


# (table, column) of the days each extract records activity on: the extracts cover up to the latest of them
ACTIVITY_DAYS = (
    ("apc_spells", "admission_date"),
    ("apc_spells", "discharge_date"),
    ("ae_attendances", "arrival_time"),
    ("prescriptions", "issue_date"),
)


def data_end(warehouse: Path) -> date:
    """The last day the extracts cover (see `_data_end`)."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        return _data_end(con, tables)
    finally:
        con.close()


def _data_end(con, tables: set[str]) -> date:
    """The end of the data: the latest day any extract records activity on (an admission, a discharge, an A&E
    arrival, a prescription), at most the load date. Not the last admission: a small
    site may admit nobody for days before the extract ends, and its beds are still counted on those days (the
    synthetic ICS's extracts stop before the day they are loaded, so the load date alone would overshoot)."""
    columns = {
        tuple(r) for r in con.execute("SELECT table_name, column_name FROM information_schema.columns").fetchall()
    }
    parts = [f"SELECT CAST(max({c}) AS DATE) AS d FROM {t}" for t, c in ACTIVITY_DAYS if (t, c) in columns]
    latest = con.execute(f"SELECT max(d) FROM ({' UNION ALL '.join(parts)})").fetchone()[0]
    as_of = con.execute("SELECT as_of FROM load_info").fetchone()[0] if "load_info" in tables else None
    as_of = as_of.date() if hasattr(as_of, "date") and callable(as_of.date) else as_of
    return min(latest, as_of) if as_of is not None else latest


def practice_pcns(warehouse: Path) -> dict[str, str]:
    """Practice code -> PCN code, from the warehouse's practices table."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return dict(con.execute("SELECT practice_code, pcn_code FROM practices").fetchall())
    finally:
        con.close()
