"""Hospital activity replayed as an event stream for the incremental refresh's tests: the last day of a warehouse
taken out and turned into HL7 ADT and FHIR Encounter messages (with a cancelled admission and a
cancelled-then-repeated discharge), and messages dated the snapshot's own day."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta

import duckdb
import pandas as pd

from features.events.emit import fhir_encounter, hl7_adt
from serving.batch.common import default_date


def day_as_events(home, numbers: dict[int, str]) -> tuple[list[str], object, object]:
    """Remove the last day's admissions and A&E arrivals (and discharges) from the warehouse; their messages."""
    day = default_date(home.warehouse_path)
    end = day - timedelta(days=1)
    con = duckdb.connect(str(home.warehouse_path))
    admitted = con.execute("SELECT * FROM apc_spells WHERE admission_date = ?", [end]).fetchdf()
    leaving = con.execute(
        "SELECT * FROM apc_spells WHERE admission_date < ? AND discharge_date = ?", [end, end]
    ).fetchdf()
    arrived = con.execute("SELECT * FROM ae_attendances WHERE CAST(arrival_time AS DATE) = ?", [end]).fetchdf()
    con.execute("DELETE FROM apc_spells WHERE admission_date = ?", [end])
    con.execute(
        "UPDATE apc_spells SET discharge_date = NULL, discharge_method = NULL "
        "WHERE admission_date < ? AND discharge_date = ?",
        [end, end],
    )
    con.execute("DELETE FROM ae_attendances WHERE CAST(arrival_time AS DATE) = ?", [end])
    con.close()
    at = lambda d, h: datetime.combine(d, time(h))  # noqa: E731
    out: list[str] = []
    for r in admitted.itertuples():
        nhs = numbers[r.person_id]
        out.append(
            hl7_adt(
                f"A{r.spell_id}",
                "admit",
                nhs,
                r.spell_id,
                at(end, 9),
                start=at(end, 0),
                admission_method=r.admission_method,
                site_code=r.site_code,
                diagnosis=r.primary_diagnosis,
            )
        )
        if r.discharge_date is not None and not pd.isna(r.discharge_date):
            out.append(
                hl7_adt(
                    f"D{r.spell_id}",
                    "discharge",
                    nhs,
                    r.spell_id,
                    at(r.discharge_date, 20),
                    end=at(r.discharge_date, 0),
                    discharge_method=r.discharge_method,
                )
            )
    for i, r in enumerate(leaving.itertuples()):
        nhs = numbers[r.person_id]
        args = dict(
            start=at(r.admission_date, 0),
            admission_method=r.admission_method,
            site_code=r.site_code,
            diagnosis=r.primary_diagnosis,
        )
        if i % 5 == 0:  # a wrong discharge, cancelled (A13), then the right one
            out.append(
                hl7_adt(
                    f"W{r.spell_id}",
                    "discharge",
                    nhs,
                    r.spell_id,
                    at(end, 10),
                    end=at(end, 0),
                    discharge_method="4",
                    **args,
                )
            )
            out.append(hl7_adt(f"C{r.spell_id}", "cancel_discharge", nhs, r.spell_id, at(end, 11)))
        out.append(
            hl7_adt(
                f"L{r.spell_id}",
                "discharge",
                nhs,
                r.spell_id,
                at(end, 12),
                end=at(end, 0),
                discharge_method=r.discharge_method,
                **args,
            )
        )
    for r in arrived.itertuples():  # A&E as FHIR Encounters: arrival, then the finished version
        nhs = numbers[r.person_id]
        out.append(
            json.dumps(
                fhir_encounter(
                    r.attendance_id,
                    1,
                    "arrived",
                    nhs,
                    r.attendance_id,
                    r.arrival_time,
                    emergency=True,
                    start=r.arrival_time,
                    site_code=r.site_code,
                )
            )
        )
        if r.departure_time is not None and not pd.isna(r.departure_time):
            out.append(
                json.dumps(
                    fhir_encounter(
                        r.attendance_id,
                        2,
                        "finished",
                        nhs,
                        r.attendance_id,
                        r.departure_time,
                        emergency=True,
                        start=r.arrival_time,
                        end=r.departure_time,
                        site_code=r.site_code,
                    )
                )
            )
    someone = numbers[admitted.person_id.iloc[0]]
    out.append(
        hl7_adt(
            "X1",
            "admit",
            someone,
            "CANCELLED1",
            at(end, 13),
            start=at(end, 13),
            admission_method="21",
            site_code=admitted.site_code.iloc[0],
        )
    )
    out.append(hl7_adt("X2", "cancel_admit", someone, "CANCELLED1", at(end, 14)))
    return out, day, end


def events_on(home, numbers: dict[int, str], day) -> tuple[list[str], set[int]]:
    """Messages dated `day` (the snapshot's index date): discharges of spells open in the warehouse, emergency
    admissions discharged the same day, and A&E attendances; and the people they concern."""
    con = duckdb.connect(str(home.warehouse_path), read_only=True)
    open_spells = con.execute(
        "SELECT * FROM apc_spells WHERE discharge_date IS NULL ORDER BY spell_id LIMIT 25"
    ).fetchdf()
    known = (
        con.execute(
            "SELECT * FROM apc_spells WHERE discharge_method IS NOT NULL AND admission_method = '21' "
            "ORDER BY spell_id LIMIT 1"
        )
        .fetchdf()
        .iloc[0]
    )
    others = con.execute(
        "SELECT person_id FROM patients WHERE person_id NOT IN (SELECT person_id FROM apc_spells "
        "WHERE discharge_date IS NULL) ORDER BY person_id LIMIT 60"
    ).fetchnumpy()["person_id"]
    con.close()
    at = lambda h: datetime.combine(day, time(h))  # noqa: E731
    out, people = [], set()
    for r in open_spells.itertuples():
        out.append(
            hl7_adt(
                f"N{r.spell_id}",
                "discharge",
                numbers[r.person_id],
                r.spell_id,
                at(10),
                start=datetime.combine(r.admission_date, time(0)),
                end=at(0),
                admission_method=r.admission_method,
                site_code=r.site_code,
                diagnosis=r.primary_diagnosis,
                discharge_method=known.discharge_method,
            )
        )
        people.add(int(r.person_id))
    for i, person in enumerate(int(p) for p in others[:30]):
        spell, nhs = f"TODAY{i}", numbers[person]
        out.append(
            hl7_adt(
                f"M{i}",
                "admit",
                nhs,
                spell,
                at(1),
                start=at(0),
                admission_method="21",
                site_code=known.site_code,
                diagnosis=known.primary_diagnosis,
            )
        )
        out.append(
            hl7_adt(
                f"K{i}",
                "discharge",
                nhs,
                spell,
                at(11),
                start=at(0),
                end=at(0),
                admission_method="21",
                site_code=known.site_code,
                diagnosis=known.primary_diagnosis,
                discharge_method=known.discharge_method,
            )
        )
        people.add(person)
    for i, person in enumerate(int(p) for p in others[30:]):
        out.append(
            json.dumps(
                fhir_encounter(
                    f"AE{i}",
                    1,
                    "finished",
                    numbers[person],
                    f"AETODAY{i}",
                    at(9),
                    emergency=True,
                    start=at(8),
                    end=at(9),
                    site_code=known.site_code,
                )
            )
        )
        people.add(person)
    return out, people
