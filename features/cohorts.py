"""Eligible populations at index dates, and the outcome labels that follow them.

Cohort (default): registered with a practice on the index date, alive at the start of it, and
adult. Labels look forward from the index date: an outcome on the index date counts; the window
is `[index_date, index_date + horizon)`. People who move away before the horizon without an
outcome, or whose horizon runs past the end of the data, are **censored**: their label is empty
and the reason is counted, never silently treated as "no event".

An admission is the start of a continuous inpatient stay: a transfer from another provider (admission method
2B) within `TRANSFER_DAYS` days of another spell's discharge (or during it) continues that stay, so it is no
new outcome: neither for someone in hospital on the index date nor for an elective stay moved between providers.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field, model_validator

from phm.core.config import Strict

from features.sources.codes import CONDITIONS, EMERGENCY_ADMISSION_METHODS, RESCUE_PACK
from features.engine.compiler import TableRef, sql_literal
from features.engine.dialect import Dialect

RESPIRATORY_ICD10 = ("J40", "J41", "J42", "J43", "J44", "J45", "J46")
TRANSFER = "2B"  # transfer of an admitted patient from another provider
TRANSFER_DAYS = 3  # HES continuous inpatient spells: a transfer within 3 days of a discharge continues the stay


class CohortConfig(Strict):
    """Who is eligible at an index date."""

    min_age: int = Field(18, ge=0, description="Youngest age in whole years (18 = adults)")
    max_age: int | None = None
    min_registration_days: int = Field(0, ge=0, description="Days registered before the index date")
    conditions: list[str] = Field(
        default_factory=list, description="Require any of these conditions coded before the index date"
    )
    monitored_days: int | None = Field(None, description="Require a home-monitoring reading in this many days before")


class LabelConfig(Strict):
    """What counts as the outcome after an index date."""

    outcome: Literal["emergency", "exacerbation"] = Field(
        "emergency",
        description="emergency: any emergency admission; exacerbation: a COPD/asthma rescue course "
        "or emergency respiratory admission",
    )
    horizon_months: int | None = 12
    horizon_days: int | None = None
    include_death: bool = False
    diagnoses: list[str] = Field(
        default_factory=list,
        description="emergency only: count only admissions whose primary "
        "diagnosis starts with one of these ICD-10 stems (empty: any)",
    )
    name: str | None = Field(
        None, pattern=r"^[a-z][a-z0-9_]*$", description="The outcome's name in the label column (default: `outcome`)"
    )

    @model_validator(mode="before")
    @classmethod
    def _days_replace_the_default_months(cls, data: object) -> object:
        """`horizon_days` alone means a horizon in days, not days ignored beside the default 12 months."""
        if isinstance(data, dict) and data.get("horizon_days") is not None and "horizon_months" not in data:
            return {**data, "horizon_months": None}
        return data

    @model_validator(mode="after")
    def _diagnoses_of_admissions(self) -> "LabelConfig":
        if self.diagnoses and self.outcome != "emergency":
            raise ValueError("diagnoses narrow emergency admissions only (outcome 'emergency')")
        given = {
            k: v
            for k, v in (("horizon_months", self.horizon_months), ("horizon_days", self.horizon_days))
            if v is not None
        }
        if len(given) != 1:  # none: an empty window, every label 0; both: the days were ignored
            raise ValueError("give one horizon: horizon_months or horizon_days")
        ((key, value),) = given.items()
        if value <= 0:
            raise ValueError(f"{key} must be a positive whole number, not {value}")
        return self

    def rules(self) -> dict:
        """The label's rules as data (a build's manifest, what a safety officer's approval covers). The narrowing
        fields appear only when set, so an outcome that does not use them reads exactly as before they existed."""
        out = self.model_dump(mode="json")
        for key in ("diagnoses", "name"):
            if not out[key]:
                del out[key]
        return out

    @property
    def column(self) -> str:
        span = f"{self.horizon_months}m" if self.horizon_months else f"{self.horizon_days}d"
        return f"label_{self.name or self.outcome}_{span}" + ("_or_death" if self.include_death else "")


def _dates(index_dates: list[date], d: Dialect) -> str:
    return " UNION ALL ".join(f"SELECT {d.date_literal(x)} AS _idx" for x in index_dates)


def cohort_sql(
    cfg: CohortConfig, index_dates: list[date], d: Dialect, table: TableRef
) -> tuple[list[tuple[str, str]], str]:
    """The small aggregates to compute first, as (name, SQL), and the query of (person_id, _idx, _reason) for
    every patient and index date over them; `_reason` is NULL when eligible.

    Portable SQL (no correlated subqueries, which Spark allows only in filters): the condition and
    monitoring rules are joins to one small per-person (or per person and date) aggregate each. The query
    is meant to be streamed, not stored: with many index dates it has patients x dates rows."""
    dates = _dates(index_dates, d)
    birth = "make_date(CAST(p.year_of_birth AS INTEGER), CAST(p.month_of_birth AS INTEGER), 1)"
    age = d.years_between(birth, "x._idx")
    # only the month of birth is known: the minimum age holds only if it holds for someone born on the month's last
    # day (an adult cohort never takes in a 17-year-old born later in the month than the index date's day)
    youngest = d.years_between(f"last_day({birth})", "x._idx")
    checks = [
        # unknown is never eligible (the loader requires these; tables read by name on a cluster may not)
        (
            "birth or registration not recorded",
            "p.year_of_birth IS NULL OR p.month_of_birth IS NULL OR p.registration_start IS NULL",
        ),
        ("died", "p.date_of_death IS NOT NULL AND p.date_of_death < x._idx"),
        ("not yet registered", f"p.registration_start > {d.add_days('x._idx', -cfg.min_registration_days)}"),
        # registration ends on the day of death: someone who dies on the index date was alive and registered at
        # the start of it (eligible, and the death is in the follow-up), as the rule above says
        (
            "registration ended",
            "p.registration_end IS NOT NULL AND p.registration_end <= x._idx "
            "AND NOT (p.registration_end = x._idx AND p.date_of_death IS NOT NULL AND p.date_of_death = x._idx)",
        ),
        ("not yet born", f"{birth} > x._idx"),
        ("below minimum age", f"{youngest} < {cfg.min_age}"),
    ]
    parts, joins = [], []
    if cfg.max_age is not None:
        checks.append(("above maximum age", f"{age} > {cfg.max_age}"))
    if cfg.conditions:
        codes = [c.snomed for c in CONDITIONS if c.key in cfg.conditions]
        parts.append(
            (
                "cohort_condition",
                f"""SELECT g.person_id, MIN(g.event_date) AS _first FROM {table("gp_events")} g
    WHERE g.code IN ({", ".join(sql_literal(c) for c in codes)}) GROUP BY g.person_id""",
            )
        )
        joins.append("LEFT JOIN cohort_condition cond ON cond.person_id = p.person_id")
        checks.append(("condition not recorded", "cond._first IS NULL OR cond._first >= x._idx"))
    if cfg.monitored_days:
        parts.append(
            (
                "cohort_monitoring",
                f"""SELECT h.person_id, w._idx FROM {table("home_monitoring")} h
    JOIN ({dates}) w ON h.reading_date < w._idx AND h.reading_date >= {d.add_days("w._idx", -cfg.monitored_days)}
    GROUP BY h.person_id, w._idx""",
            )
        )
        joins.append("LEFT JOIN cohort_monitoring mon ON mon.person_id = p.person_id AND mon._idx = x._idx")
        checks.append(("no recent home monitoring", "mon.person_id IS NULL"))
    reason = "CASE " + " ".join(f"WHEN {cond} THEN {sql_literal(name)}" for name, cond in checks) + " END"
    return parts, (
        f"SELECT p.person_id, x._idx, {reason} AS _reason\n"
        f"FROM {table('patients')} p CROSS JOIN ({dates}) x\n" + "\n".join(joins)
    )


def _continued_transfers(d: Dialect, table: TableRef) -> str:
    """Spell ids of transfers (2B) that continue another spell of the same person: admitted before the transfer
    (or the same day, unless itself a transfer) and not discharged more than `TRANSFER_DAYS` days before it."""
    return f"""SELECT DISTINCT t.spell_id FROM {table("apc_spells")} t JOIN {table("apc_spells")} p
        ON p.person_id = t.person_id AND p.spell_id <> t.spell_id
      WHERE t.admission_method = {sql_literal(TRANSFER)}
        AND (p.admission_date < t.admission_date
             OR (p.admission_date = t.admission_date AND p.admission_method <> {sql_literal(TRANSFER)}))
        AND (p.discharge_date IS NULL OR p.discharge_date >= {d.add_days("t.admission_date", -TRANSFER_DAYS)})"""


def label_sql(cfg: LabelConfig, d: Dialect, table: TableRef, data_end: date) -> str:
    """(person_id, _idx, label, censor_reason, died_in_follow_up) for the rows of table `cohort`. Deaths in the
    follow-up are a measure of need that does not depend on service use (the audit's need at equal score)."""

    def horizon(idx: str) -> str:
        return d.add_months(idx, cfg.horizon_months) if cfg.horizon_months else d.add_days(idx, cfg.horizon_days or 0)

    methods = ", ".join(sql_literal(m) for m in EMERGENCY_ADMISSION_METHODS)

    def outcomes(source: str, date_col: str, condition: str) -> str:
        stay = ""
        if source == "apc_spells":  # transfers that continue a stay are not admissions
            stay = f"\n    LEFT JOIN ({_continued_transfers(d, table)}) t ON t.spell_id = e.spell_id"
            condition += " AND t.spell_id IS NULL"
        return (
            f"SELECT o.person_id, o._idx FROM cohort o JOIN {table(source)} e ON e.person_id = o.person_id{stay}\n"
            f"    WHERE {condition} AND e.{date_col} >= o._idx AND e.{date_col} < {horizon('o._idx')}"
        )

    if cfg.outcome == "emergency":
        which, by_length = "", {}
        for code in cfg.diagnoses:
            by_length.setdefault(len(code), []).append(sql_literal(code))
        if by_length:  # one IN list per stem length, not an OR per stem
            which = (
                " AND ("
                + " OR ".join(
                    f"substr(e.primary_diagnosis, 1, {n}) IN ({', '.join(codes)})"
                    for n, codes in sorted(by_length.items())
                )
                + ")"
            )
        events = outcomes("apc_spells", "admission_date", f"e.admission_method IN ({methods}){which}")
    else:
        resp = " OR ".join(d.starts_with("e.primary_diagnosis", code) for code in RESPIRATORY_ICD10)
        events = (
            outcomes("prescriptions", "issue_date", f"e.bnf_code = {sql_literal(RESCUE_PACK[0])}")
            + "\n    UNION ALL\n"
            + outcomes("apc_spells", "admission_date", f"e.admission_method IN ({methods}) AND ({resp})")
        )
    event = "ev.person_id IS NOT NULL"
    end = horizon("c._idx")
    if cfg.include_death:
        event = f"({event} OR (p.date_of_death >= c._idx AND p.date_of_death < {end}))"
    moved = (
        f"p.registration_end IS NOT NULL AND p.registration_end < {end} "
        f"AND (p.date_of_death IS NULL OR p.date_of_death > p.registration_end)"
    )
    past_end = f"{end} > {d.add_days(d.date_literal(data_end), 1)}"
    return f"""SELECT c.person_id, c._idx,
       CASE WHEN {event} THEN 1 WHEN {moved} OR {past_end} THEN NULL ELSE 0 END AS {cfg.column},
       CASE WHEN {event} THEN NULL WHEN {moved} THEN 'moved away' WHEN {past_end} THEN 'follow-up beyond data'
            END AS censor_reason,
       CASE WHEN p.date_of_death >= c._idx AND p.date_of_death < {end} THEN 1 ELSE 0 END AS died_in_follow_up
FROM cohort c JOIN {table("patients")} p ON p.person_id = c.person_id
LEFT JOIN (SELECT person_id, _idx FROM (
    {events}
  ) hit GROUP BY person_id, _idx) ev ON ev.person_id = c.person_id AND ev._idx = c._idx"""
