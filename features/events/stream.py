"""The synthetic ICS's hospital activity on and after a date as an event stream (for tests and benchmarks):
admissions and discharges as HL7 v2 ADT, A&E attendances as FHIR Encounters, delivered with a share of
duplicates, cancellations (a mistaken admission cancelled by A11; a mistaken discharge cancelled by A13, then
the right one), out-of-order deliveries and malformed messages. Each message has the time it is sent (its
arrival) and the time its event happened."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from features.events.emit import fhir_encounter, hl7_adt
from features.sources.extracts import find_extract


@dataclass(frozen=True)
class StreamMessage:
    sent: datetime  # when it arrives at the feed
    happened: datetime  # when its event happened at the source
    kind: str  # "event", "duplicate", "cancellation", "late", "malformed"
    text: str


def _read(folder: Path, name: str) -> pd.DataFrame:
    path = find_extract(folder, name)
    if path is None:
        raise FileNotFoundError(f"{folder}: no {name} extract")
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str)


def _readable(frame: pd.DataFrame, first: str, second: str) -> pd.DataFrame:
    """`frame` with its two times parsed, less the rows where either is given but unreadable (the generator's
    malformed rows, e.g. "31/02/2021", which the loader quarantines whole): nothing an event could carry."""
    parsed = {c: pd.to_datetime(frame[c], errors="coerce", format="ISO8601") for c in (first, second)}
    bad = parsed[first].isna() | (frame[second].notna() & parsed[second].isna())
    return frame.assign(**parsed)[~bad.to_numpy()]


def event_stream(
    extracts: Path,
    after: date,
    seed: int = 0,
    duplicates: float = 0.02,
    cancellations: float = 0.01,
    late: float = 0.05,
    malformed: float = 0.005,
) -> list[StreamMessage]:
    """The activity of `extracts` (a generated ICS folder) on and after `after`, in the order it is sent."""
    rng = np.random.default_rng(seed)
    apc = _readable(_read(extracts, "apc_spells"), "admission_date", "discharge_date")
    ae = _readable(_read(extracts, "ae_attendances"), "arrival_time", "departure_time")
    start = datetime.combine(after, time())
    out: list[StreamMessage] = []

    def add(happened: datetime, text: str, kind: str = "event") -> None:
        out.append(StreamMessage(happened + timedelta(seconds=float(rng.integers(5, 120))), happened, kind, text))

    apc = apc[apc.admission_date >= start]
    for r in apc.itertuples(index=False):
        admitted = datetime.combine(pd.Timestamp(r.admission_date).date(), time()) + timedelta(
            minutes=int(rng.integers(0, 22 * 60))
        )  # by 22:00, so a same-day discharge stays on its day
        info = dict(
            start=admitted,
            admission_method=r.admission_method,
            site_code=r.site_code,
            diagnosis=r.primary_diagnosis if isinstance(r.primary_diagnosis, str) else None,
        )
        add(admitted, hl7_adt(f"A-{r.spell_id}", "admit", r.nhs_number, r.spell_id, admitted, **info))
        if not pd.isna(r.discharge_date):
            day_start = datetime.combine(pd.Timestamp(r.discharge_date).date(), time())
            earliest = max(day_start, admitted + timedelta(hours=1))
            left = earliest + timedelta(
                minutes=int(
                    rng.integers(0, max(1, (day_start + timedelta(hours=23, minutes=59) - earliest).seconds // 60))
                )
            )
            if rng.random() < cancellations:
                add(
                    left - timedelta(minutes=30),
                    hl7_adt(
                        f"W-{r.spell_id}",
                        "discharge",
                        r.nhs_number,
                        r.spell_id,
                        left - timedelta(minutes=30),
                        end=left - timedelta(minutes=30),
                        discharge_method="4",
                        **info,
                    ),
                    "cancellation",
                )
                add(
                    left - timedelta(minutes=20),
                    hl7_adt(
                        f"C-{r.spell_id}", "cancel_discharge", r.nhs_number, r.spell_id, left - timedelta(minutes=20)
                    ),
                    "cancellation",
                )
            add(
                left,
                hl7_adt(
                    f"D-{r.spell_id}",
                    "discharge",
                    r.nhs_number,
                    r.spell_id,
                    left,
                    end=left,
                    discharge_method=r.discharge_method,
                    **info,
                ),
            )
        if rng.random() < cancellations:  # a mistaken admission of the same person, cancelled
            add(
                admitted,
                hl7_adt(f"X-{r.spell_id}", "admit", r.nhs_number, f"X{r.spell_id}", admitted, **info),
                "cancellation",
            )
            add(
                admitted + timedelta(minutes=15),
                hl7_adt(
                    f"XC-{r.spell_id}", "cancel_admit", r.nhs_number, f"X{r.spell_id}", admitted + timedelta(minutes=15)
                ),
                "cancellation",
            )
    ae = ae[ae.arrival_time >= start]
    for r in ae.itertuples(index=False):
        arrived = pd.Timestamp(r.arrival_time).to_pydatetime()
        add(
            arrived,
            json.dumps(
                fhir_encounter(
                    r.attendance_id,
                    1,
                    "arrived",
                    r.nhs_number,
                    r.attendance_id,
                    arrived,
                    emergency=True,
                    start=arrived,
                    site_code=r.site_code,
                )
            ),
        )
        if not pd.isna(r.departure_time):
            left = pd.Timestamp(r.departure_time).to_pydatetime()
            add(
                left,
                json.dumps(
                    fhir_encounter(
                        r.attendance_id,
                        2,
                        "finished",
                        r.nhs_number,
                        r.attendance_id,
                        left,
                        emergency=True,
                        start=arrived,
                        end=left,
                        site_code=r.site_code,
                    )
                ),
            )
    originals = list(out)
    for m in originals:
        u = rng.random()
        if u < duplicates:
            out.append(
                StreamMessage(m.sent + timedelta(minutes=float(rng.integers(1, 30))), m.happened, "duplicate", m.text)
            )
        elif u < duplicates + late:  # delivered late: after messages of events that happened later
            out.remove(m)
            out.append(
                StreamMessage(m.sent + timedelta(minutes=float(rng.integers(10, 120))), m.happened, "late", m.text)
            )
    for m in [originals[i] for i in rng.choice(len(originals), int(len(originals) * malformed), replace=False)]:
        if m.text.startswith("{"):
            broken = m.text[: len(m.text) // 3]  # cut short: not JSON
        else:  # its header only, under a new id: no patient or visit segments
            header = m.text.split("\r")[0].split("|")
            header[9] = "BAD-" + header[9]
            broken = "|".join(header)
        out.append(StreamMessage(m.sent, m.happened, "malformed", broken))
    return sorted(out, key=lambda m: m.sent)
