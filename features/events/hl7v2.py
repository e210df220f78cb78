"""HL7 v2 ADT messages (read with the `hl7` library): A01 admit, A03 discharge, A04 register (A&E attendance),
A08 update, A11 cancel admit/visit, A13 cancel discharge.

Fields read: MSH-10 message id, MSH-9 type, EVN-2 recorded time (else MSH-7) as the order of events, PID-3 the
identifier whose assigning authority is NHS (PID-3.4 `NHS`, or type PID-3.5 `NH`), PV1-2 patient class
(`E` emergency: an A&E attendance; else an inpatient spell), PV1-3.4 site, PV1-4 admission method (NHS
codes), PV1-19 visit number (the encounter), PV1-36 discharge method, PV1-44/45 admit and discharge times,
DG1-3 the first diagnosis (ICD-10)."""

from __future__ import annotations

import re

from datetime import datetime, timezone

import hl7

from features.events.model import Fields, MessageError, Parsed

TRIGGERS = {
    "A01": "admit",
    "A04": "attend",
    "A03": "discharge",
    "A08": "update",
    "A11": "cancel_admit",
    "A13": "cancel_discharge",
}


def looks_like_hl7(text: str) -> bool:
    return text.lstrip().startswith("MSH|")


def parse_hl7(text: str) -> Parsed:
    """One ADT message -> `Parsed`; a `MessageError` names the broken rule and field."""
    text = text.strip().replace("\r\n", "\r").replace("\n", "\r")
    try:
        msg = hl7.parse(text)
        msh = msg.segment("MSH")
    except Exception as exc:  # the library raises several kinds on broken text
        raise MessageError("unparseable", detail=type(exc).__name__) from None
    message_id = _get(msg, "MSH.F10") or None
    if not message_id:
        raise MessageError("missing_value", "MSH-10")
    kind, event = _get(msg, "MSH.F9.R1.C1"), _get(msg, "MSH.F9.R1.C2") or _get(msg, "EVN.F1")
    if kind != "ADT" or event not in TRIGGERS:
        sent = f"{kind}^{event}"  # kept in quarantine only when shaped like an HL7 message type, never a name
        shown = sent if re.fullmatch(r"[A-Z]{3}\^[A-Z][0-9]{2}", sent) else "not an HL7 message type"
        raise MessageError("unsupported_message", "MSH-9", shown, message_id)
    del msh
    try:
        pid, pv1 = msg.segment("PID"), msg.segment("PV1")
    except KeyError as exc:
        raise MessageError("missing_value", str(exc).strip("'\""), "segment missing", message_id) from None
    del pid, pv1
    occurred = _time(msg, "EVN.F2", message_id, required=False) or _time(msg, "MSH.F7", message_id)
    encounter = _get(msg, "PV1.F19")
    if not encounter:
        raise MessageError("missing_value", "PV1-19", "visit number", message_id)
    diagnosis = _get(msg, "DG1.F3.R1.C1") if _has(msg, "DG1") else ""
    fields = Fields(
        start=_time(msg, "PV1.F44", message_id, required=False),
        end=_time(msg, "PV1.F45", message_id, required=False),
        admission_method=_get(msg, "PV1.F4") or None,
        primary_diagnosis=diagnosis.replace(".", "").upper() or None,
        site_code=_get(msg, "PV1.F3.R1.C4") or None,
        discharge_method=_get(msg, "PV1.F36") or None,
    )
    return Parsed(
        message_id=message_id,
        format="hl7v2",
        trigger=TRIGGERS[event],
        setting="emergency" if _get(msg, "PV1.F2") == "E" else "inpatient",
        occurred=occurred,
        nhs_number=_nhs_number(msg, message_id),
        encounter_id=encounter,
        fields=fields,
    )


def _has(msg: hl7.Message, segment: str) -> bool:
    try:
        msg.segment(segment)
        return True
    except KeyError:
        return False


def _get(msg: hl7.Message, where: str) -> str:
    try:
        return str(msg[where]).strip()
    except (KeyError, IndexError):
        return ""


def _time(msg: hl7.Message, where: str, message_id: str, required: bool = True) -> datetime | None:
    value = _get(msg, where)
    field = where.replace(".F", "-").split(".")[0]
    if not value:
        if required:
            raise MessageError("missing_value", field, message_id=message_id)
        return None
    try:
        when = hl7.parse_datetime(value)
    except (ValueError, TypeError):
        raise MessageError("wrong_type", field, "not an HL7 date/time", message_id) from None
    if when.tzinfo is None:
        return when
    try:  # with an offset (`+0100`), in UTC as FHIR's times are (the warehouse's times are naive UTC)
        return when.astimezone(timezone.utc).replace(tzinfo=None)
    except OverflowError:  # year 1 or 9999 moved past the calendar's ends
        raise MessageError("date_out_of_range", field, message_id=message_id) from None


def _nhs_number(msg: hl7.Message, message_id: str) -> str:
    """The PID-3 repetition assigned by NHS (authority `NHS` or identifier type `NH`)."""
    pid = msg.segment("PID")
    ids = pid[3] if len(pid) > 3 else []
    for rep in ids:
        parts = [str(c).strip() for c in rep] if isinstance(rep, hl7.Component | hl7.Repetition) else [str(rep)]
        authority = parts[3] if len(parts) > 3 else ""
        kind = parts[4] if len(parts) > 4 else ""
        if (authority.upper() == "NHS" or kind.upper() == "NH") and parts[0]:
            return parts[0]
    raise MessageError("missing_value", "PID-3", "no NHS number", message_id)
