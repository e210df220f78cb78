"""Events folded into encounter rows shaped like the warehouse's `apc_spells` and `ae_attendances`.

The fold depends only on the set of events, not on the order they arrived: events are applied in the order
they happened at the source (`occurred`, then arrival), so a discharge delivered before its admission, or a
cancellation before what it cancels, gives the same rows as the right order. Per encounter: admit/attend
opens it with its fields; discharge records the end (and opens it, if its start is known, for a feed joined
mid-stay); update changes the fields it carries; cancel_admit removes the encounter and all it held (a later
admit re-opens it); cancel_discharge clears the end and the discharge method. An encounter the events never
open nor cancel (an update or a cancelled discharge alone, of an encounter held only by the warehouse or whose
earlier events were absorbed and pruned) changes nothing: the warehouse's row stands."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

FIELDS = ["start", "end", "admission_method", "primary_diagnosis", "site_code", "discharge_method"]
APC = [
    "person_id",
    "spell_id",
    "admission_date",
    "discharge_date",
    "admission_method",
    "primary_diagnosis",
    "site_code",
    "critical_care_days",
    "discharge_method",
]
AE = [
    "person_id",
    "attendance_id",
    "arrival_time",
    "departure_time",
    "site_code",
    "acuity",
    "diagnosis_snomed",
    "discharge_destination",
]


TABLES = {"inpatient": "apc_spells", "emergency": "ae_attendances"}
KEYS = {"apc_spells": "spell_id", "ae_attendances": "attendance_id"}


def fold(events: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Stored events (one row each, see `store.EVENT_COLUMNS`) -> {"apc_spells": rows, "ae_attendances": rows,
    "apc_spells_removed": (spell_id, person_id) of cancelled spells, "ae_attendances_removed": likewise}."""
    state: dict[tuple[str, str], dict] = {}
    ordered = events.sort_values(["occurred", "received", "seq"], kind="stable") if len(events) else events
    for e in ordered.itertuples(index=False):
        key = (e.setting, e.encounter_id)
        s = state.setdefault(key, {"open": False, "cancelled": False, **{f: None for f in FIELDS}})
        s["person_id"] = e.person_id
        given = {f: getattr(e, f) for f in FIELDS if not _missing(getattr(e, f))}
        if e.trigger == "cancel_admit":
            state[key] = {"open": False, "cancelled": True, "person_id": e.person_id, **{f: None for f in FIELDS}}
            continue
        if e.trigger == "cancel_discharge":
            s["end"] = s["discharge_method"] = None
            continue
        s.update(given)
        if e.trigger in ("admit", "attend") or (e.trigger == "discharge" and s["start"] is not None):
            s["open"] = True
    rows = {"inpatient": [], "emergency": []}
    removed = {"inpatient": [], "emergency": []}  # cancelled: also taken out of the warehouse's rows
    for (setting, encounter), s in sorted(state.items()):
        if s["open"] and s["start"] is not None:
            rows[setting].append((encounter, s))
        elif s["cancelled"] and not s["open"]:  # never opened by the events (a lone update, say): left alone
            removed[setting].append((encounter, s["person_id"]))
    apc = pd.DataFrame(
        [
            {
                "person_id": s["person_id"],
                "spell_id": enc,
                "admission_date": s["start"].date(),
                "discharge_date": s["end"].date() if s["end"] is not None else None,
                "admission_method": s["admission_method"],
                "primary_diagnosis": s["primary_diagnosis"],
                "site_code": s["site_code"],
                "critical_care_days": None,
                "discharge_method": s["discharge_method"],
            }
            for enc, s in rows["inpatient"]
        ],
        columns=APC,
    )
    ae = pd.DataFrame(
        [
            {
                "person_id": s["person_id"],
                "attendance_id": enc,
                "arrival_time": s["start"],
                "departure_time": s["end"],
                "site_code": s["site_code"],
                "acuity": None,
                "diagnosis_snomed": None,
                "discharge_destination": None,
            }
            for enc, s in rows["emergency"]
        ],
        columns=AE,
    )
    gone = {f"{TABLES[k]}_removed": pd.DataFrame(v, columns=[KEYS[TABLES[k]], "person_id"]) for k, v in removed.items()}
    return {"apc_spells": apc, "ae_attendances": ae, **gone}


def _missing(value) -> bool:
    return value is None or (not isinstance(value, str) and pd.isna(value))


DATED = {"apc_spells": ("admission_date", "discharge_date"), "ae_attendances": ("arrival_time",)}


def index_date(rows: dict[str, pd.DataFrame], snapshot_day: date) -> date:
    """The day after the latest admission, discharge or A&E arrival date the folded event rows hold (the dates
    features read), or the snapshot's day when that is later."""
    latest = snapshot_day - timedelta(days=1)
    for table, columns in DATED.items():
        frame = rows[table]
        for column in columns:
            values = pd.to_datetime(frame[column], errors="coerce").dropna() if len(frame) else []
            if len(values):
                latest = max(latest, values.max().date())
    return max(snapshot_day, latest + timedelta(days=1))
