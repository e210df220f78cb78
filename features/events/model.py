"""What a parsed message becomes: one `Event` (pseudonymised, normalised) or one `Rejection` (a quarantine reason)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from features.sources.nhs_number import is_valid

Trigger = Literal["admit", "attend", "discharge", "update", "cancel_admit", "cancel_discharge"]
Setting = Literal["inpatient", "emergency"]

# Quarantine reasons of event messages (beside the contracts' RULES, whose names are reused for field checks).
EVENT_RULES = {
    "unparseable": "the message cannot be read as HL7 v2 or FHIR JSON",
    "unsupported_message": "a message type or trigger event the feed does not handle",
    "invalid_resource": "a FHIR resource that does not validate against FHIR R4",
    "missing_value": "a required field is empty",
    "invalid_nhs_number": "NHS number is not 10 digits with a valid modulus-11 check digit",
    "wrong_type": "a value cannot be read as the field's type",
    "unknown_code": "a code is not in the column's code set or pattern",
    "future_date": "a date is after the time the message arrived",
    "date_out_of_range": "a date is before 1900",
    "end_before_start": "an end date is before its start date",
    "unknown_reference": "the message refers to a site that is not in the warehouse's sites",
    "unlinked": "valid NHS number with no matching patient record",
    "identifier_in_id": "the message or encounter id holds the patient's NHS number (ids are stored as sent)",
}


class Fields(BaseModel):
    """The encounter fields a message carries (None: not given; an update leaves such fields as they were)."""

    model_config = ConfigDict(extra="forbid")

    start: datetime | None = None  # admission date / A&E arrival time
    end: datetime | None = None  # discharge date / A&E departure time
    admission_method: str | None = None
    primary_diagnosis: str | None = None  # ICD-10, without its dot
    site_code: str | None = None
    discharge_method: str | None = None


class Event(BaseModel):
    """A message that passed its checks. `person_id` is the keyed pseudonym; the NHS number is never kept."""

    model_config = ConfigDict(extra="forbid")

    message_id: str
    format: Literal["hl7v2", "fhir"]
    trigger: Trigger
    setting: Setting
    occurred: datetime  # when the event was recorded at the source: the order in which events are applied
    person_id: int
    encounter_id: str
    fields: Fields


class Rejection(BaseModel):
    """A message put in quarantine: its id if it could be read, the rule it broke and the field; no content."""

    model_config = ConfigDict(extra="forbid")

    message_id: str | None
    reason: str
    field: str | None = None
    detail: str = ""


class MessageError(ValueError):
    """A message broke a rule: raised by the parsers and checks, turned into a `Rejection` by the ingest."""

    def __init__(self, reason: str, field: str | None = None, detail: str = "", message_id: str | None = None):
        assert reason in EVENT_RULES, reason
        detail, message_id = _safe(detail), _safe(message_id) or None
        super().__init__(f"{reason}: {field or ''} {detail}".strip())
        self.reason, self.field, self.detail, self.message_id = reason, field, detail, message_id


def _safe(text: str | None) -> str:
    """Sender-supplied text kept in quarantine only when it cannot be an identifier: short, plain characters, and
    no ten digits (ignoring spaces and dashes) that make a valid NHS number."""
    if not text or not re.fullmatch(r"[A-Za-z0-9_.:/^~ -]{1,80}", text):
        return ""
    digits = re.sub(r"[ -]", "", text)
    if any(is_valid(digits[i : i + 10]) for i in range(len(digits) - 9)):
        return ""
    return text


class Parsed(BaseModel):
    """A message read but not yet checked. Holds the NHS number in memory only (left out of its repr and of
    any error), until `checks.accept` replaces it with the pseudonym."""

    model_config = ConfigDict(extra="forbid")

    message_id: str
    format: Literal["hl7v2", "fhir"]
    trigger: Trigger
    setting: Setting
    occurred: datetime
    nhs_number: str
    encounter_id: str
    fields: Fields

    def __repr_args__(self):
        return [(k, v) for k, v in super().__repr_args__() if k != "nhs_number"]
