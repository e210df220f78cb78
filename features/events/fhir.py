"""FHIR R4 `Encounter` resources, alone or in a `Bundle`, validated with `fhir.resources` (its R4B package:
Encounter is the same in R4 and R4B).

An Encounter is a state, not a trigger: `class` IMP/ACUTE/NONAC (inpatient) or EMER (A&E); `status`
in-progress/arrived -> admit or attend, finished -> discharge, cancelled/entered-in-error -> cancel. The
message id is the resource's id and `meta.versionId` (a new version is a new message); the order of events is
`meta.lastUpdated`. The NHS number is the subject's identifier of system `https://fhir.nhs.uk/Id/nhs-number`;
the encounter is `identifier[0].value` (else the resource id); the site is `serviceProvider.identifier.value`;
the admission method the UK Core extension `Extension-UKCore-AdmissionMethod`; the diagnosis the first
`reasonCode` coded in ICD-10."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from pydantic import ValidationError

from features.events.model import Fields, MessageError, Parsed

NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ICD10_SYSTEMS = {"http://hl7.org/fhir/sid/icd-10", "http://hl7.org/fhir/sid/icd-10-uk"}
ADMISSION_METHOD = "Extension-UKCore-AdmissionMethod"
DISCHARGE_METHOD = "Extension-UKCore-DischargeMethod"
INPATIENT, EMERGENCY = {"IMP", "ACUTE", "NONAC"}, {"EMER"}
# the codes FHIR defines (shown in quarantine when sent; any other text is not kept: it could be a name)
ENCOUNTER_CLASSES = INPATIENT | EMERGENCY | {"AMB", "FLD", "HH", "OBSENC", "PRENC", "SS", "VR"}
ENCOUNTER_STATUSES = {"planned", "arrived", "triaged", "in-progress", "onleave", "finished", "cancelled"} | {
    "entered-in-error",
    "unknown",
}


def parse_fhir(text: str) -> list[Parsed | MessageError]:
    """A JSON Encounter or Bundle of them -> one `Parsed` or `MessageError` per Encounter. Nesting too deep for
    the JSON reader or the validator (a few kilobytes of nested extensions suffice) is quarantined, not raised:
    one such message must not stop the ingest of every other."""
    try:
        return _parse_fhir(text)
    except RecursionError:
        return [MessageError("unparseable", detail="nested too deeply")]


def _parse_fhir(text: str) -> list[Parsed | MessageError]:
    from fhir.resources.R4B.bundle import Bundle
    from fhir.resources.R4B.encounter import Encounter

    try:
        data = json.loads(text)
    except ValueError:
        return [MessageError("unparseable", detail="not JSON")]
    kind = data.get("resourceType") if isinstance(data, dict) else None
    if kind == "Bundle":
        try:
            bundle = Bundle.model_validate(data)
        except ValidationError as exc:
            return [MessageError("invalid_resource", "Bundle", _first_error(exc), data.get("id"))]
        return [
            _one(e.resource, Encounter)
            if e.resource is not None and e.resource.get_resource_type() == "Encounter"
            else MessageError("unsupported_message", "entry.resource", "not an Encounter", _id(e.resource))
            for e in bundle.entry or []
        ]
    if kind != "Encounter":
        return [MessageError("unsupported_message", "resourceType", _resource_type(kind))]
    try:
        return [_one(Encounter.model_validate(data), Encounter)]
    except ValidationError as exc:
        return [MessageError("invalid_resource", "Encounter", _first_error(exc), _id_of(data))]


def _resource_type(kind: object) -> str:
    """The resource type sent, when it is one FHIR defines (sender text kept in quarantine only when it cannot be
    a name or an identifier)."""
    from fhir.resources.R4B import get_fhir_model_class

    try:
        get_fhir_model_class(str(kind))
    except (ValueError, KeyError, TypeError):
        return "not a FHIR resource type"
    return str(kind)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return (".".join(str(p) for p in err.get("loc", ())) + ": " + err.get("type", ""))[:120]


def _id_of(data: dict) -> str | None:
    rid, version = data.get("id"), (data.get("meta") or {}).get("versionId")
    return f"Encounter/{rid}/_history/{version}" if rid and version else None


def _id(resource) -> str | None:
    if resource is None or not getattr(resource, "id", None):
        return None
    version = resource.meta.versionId if resource.meta else None
    return f"{resource.get_resource_type()}/{resource.id}/_history/{version}" if version else None


def _one(enc, _cls) -> Parsed | MessageError:
    message_id = _id(enc)
    if message_id is None:
        return MessageError("missing_value", "Encounter.meta.versionId", "id and version name the message")
    if enc.meta.lastUpdated is None:
        return MessageError("missing_value", "Encounter.meta.lastUpdated", message_id=message_id)
    code = enc.class_fhir.code if enc.class_fhir else None
    if code not in INPATIENT | EMERGENCY:
        shown = str(code) if code in ENCOUNTER_CLASSES else "not an ActCode encounter class"
        return MessageError("unsupported_message", "Encounter.class", shown, message_id)
    setting = "emergency" if code in EMERGENCY else "inpatient"
    status = enc.status
    if status in ("cancelled", "entered-in-error"):
        trigger = "cancel_admit"
    elif status == "finished":
        trigger = "discharge"
    elif status in ("in-progress", "arrived", "onleave"):
        trigger = "attend" if setting == "emergency" else "admit"
    else:
        shown = str(status) if status in ENCOUNTER_STATUSES else "not an Encounter status"
        return MessageError("unsupported_message", "Encounter.status", shown, message_id)
    nhs = next(
        (
            i.value
            for i in ((enc.subject.identifier,) if enc.subject and enc.subject.identifier else ())
            if i.system == NHS_SYSTEM and i.value
        ),
        None,
    )
    if not nhs:
        return MessageError("missing_value", "Encounter.subject.identifier", "no NHS number", message_id)
    encounter = enc.identifier[0].value if enc.identifier and enc.identifier[0].value else enc.id
    period = enc.period
    provider = enc.serviceProvider.identifier.value if enc.serviceProvider and enc.serviceProvider.identifier else None
    diagnosis = next(
        (c.code for r in enc.reasonCode or [] for c in r.coding or [] if c.system in ICD10_SYSTEMS and c.code), None
    )
    fields = Fields(
        start=_naive(period.start) if period else None,
        end=_naive(period.end) if period else None,
        admission_method=_extension(enc, ADMISSION_METHOD),
        site_code=provider,
        primary_diagnosis=diagnosis.replace(".", "").upper() if diagnosis else None,
        discharge_method=_extension(enc, DISCHARGE_METHOD),
    )
    return Parsed(
        message_id=message_id,
        format="fhir",
        trigger=trigger,
        setting=setting,
        occurred=_naive(enc.meta.lastUpdated),
        nhs_number=nhs,
        encounter_id=str(encounter),
        fields=fields,
    )


def _extension(enc, name: str) -> str | None:
    for ext in enc.extension or []:
        if ext.url.endswith(name) and ext.valueCodeableConcept is not None:
            return next((c.code for c in ext.valueCodeableConcept.coding or [] if c.code), None)
    return None


def _naive(value) -> datetime | None:
    """FHIR dateTimes carry a zone: in UTC without it (the warehouse's times are naive UTC)."""
    if value is None:
        return None
    if not isinstance(value, datetime):  # a bare date
        return datetime(value.year, value.month, value.day)
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value
