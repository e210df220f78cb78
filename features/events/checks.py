"""The checks a parsed message must pass before it is stored, taken from the extract contracts (`apc_spells` for
inpatient spells, `ae_attendances` for A&E), and the pseudonymisation that replaces its NHS number."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from features.events.model import Event, MessageError, Parsed
from features.sources import codes
from features.sources.contracts import CONTRACTS_BY_NAME
from features.sources.nhs_number import is_valid, normalise
from features.sources.pseudonymise import Pseudonymiser

CLOCK_SKEW = timedelta(minutes=5)  # a sender's clock may run this far ahead of ours
TABLE = {"inpatient": "apc_spells", "emergency": "ae_attendances"}
# Fields -> contract column, per setting
COLUMNS = {
    "inpatient": {
        "start": "admission_date",
        "end": "discharge_date",
        "admission_method": "admission_method",
        "primary_diagnosis": "primary_diagnosis",
        "site_code": "site_code",
        "discharge_method": "discharge_method",
    },
    "emergency": {"start": "arrival_time", "end": "departure_time", "site_code": "site_code"},
}
NEEDS = {"admit": ("start", "admission_method", "site_code"), "attend": ("start", "site_code"), "discharge": ("end",)}


@dataclass
class Known:
    """What the warehouse knows, for reference checks: its sites and its people's pseudonyms (None: not checked)."""

    sites: set[str] | None = None
    people: set[int] | None = field(default=None, repr=False)


def accept(parsed: Parsed, pseudonymiser: Pseudonymiser, received: datetime, known: Known | None = None) -> Event:
    """A checked, pseudonymised `Event`, or a `MessageError` naming the rule and field."""
    mid = parsed.message_id
    number = normalise(parsed.nhs_number)
    if not is_valid(number):
        raise MessageError("invalid_nhs_number", "nhs_number", message_id=mid)
    for name, value in (("message_id", mid), ("encounter_id", parsed.encounter_id)):
        if number in re.sub(r"\D", "", str(value or "")):  # ids are kept as sent (duplicates are found by them)
            raise MessageError("identifier_in_id", name, message_id=mid)
    f = parsed.fields
    if parsed.trigger in NEEDS:
        for name in NEEDS[parsed.trigger]:
            if getattr(f, name) is None and not (parsed.setting == "emergency" and name == "admission_method"):
                raise MessageError("missing_value", COLUMNS[parsed.setting].get(name, name), message_id=mid)
    contract = CONTRACTS_BY_NAME[TABLE[parsed.setting]]
    for name, column in COLUMNS[parsed.setting].items():
        value = getattr(f, name)
        if value is None or isinstance(value, datetime):
            continue
        col = contract.column(column)
        pattern = codes.SITE_PATTERN if column == "site_code" else col.pattern
        if (col.codes is not None and value not in col.codes) or (pattern and not re.match(pattern, value)):
            raise MessageError("unknown_code", column, message_id=mid)
    for when, name in ((parsed.occurred, "occurred"), (f.start, "start"), (f.end, "end")):
        if when is None:
            continue
        if when > received + CLOCK_SKEW:
            raise MessageError("future_date", COLUMNS[parsed.setting].get(name, name), message_id=mid)
        if when.year < 1900:
            raise MessageError("date_out_of_range", COLUMNS[parsed.setting].get(name, name), message_id=mid)
    if f.start is not None and f.end is not None and f.end < f.start:
        raise MessageError("end_before_start", COLUMNS[parsed.setting]["end"], message_id=mid)
    known = known or Known()
    if known.sites is not None and f.site_code is not None and f.site_code not in known.sites:
        raise MessageError("unknown_reference", "site_code", message_id=mid)
    person = pseudonymiser.person_id(number)
    if known.people is not None and person not in known.people:
        raise MessageError("unlinked", "nhs_number", message_id=mid)
    return Event(
        message_id=mid,
        format=parsed.format,
        trigger=parsed.trigger,
        setting=parsed.setting,
        occurred=parsed.occurred,
        person_id=person,
        encounter_id=parsed.encounter_id,
        fields=parsed.fields,
    )
