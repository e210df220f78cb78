"""Writing events as messages: HL7 v2 ADT text and FHIR R4 Encounter JSON (the synthetic stream and tests use
these; a real feed comes from a hospital's integration engine)."""

from __future__ import annotations

import json
from datetime import datetime

EVENT_CODES = {
    "admit": "A01",
    "attend": "A04",
    "discharge": "A03",
    "update": "A08",
    "cancel_admit": "A11",
    "cancel_discharge": "A13",
}


def _ts(when: datetime | None) -> str:
    return f"{when:%Y%m%d%H%M%S}" if when else ""


def hl7_adt(
    message_id: str,
    trigger: str,
    nhs_number: str,
    encounter: str,
    occurred: datetime,
    *,
    emergency: bool = False,
    start: datetime | None = None,
    end: datetime | None = None,
    admission_method: str | None = None,
    site_code: str | None = None,
    diagnosis: str | None = None,
    discharge_method: str | None = None,
) -> str:
    """One ADT message (segments separated by carriage returns)."""
    code = EVENT_CODES[trigger]
    pv1 = [""] * 46
    pv1[0], pv1[1], pv1[2] = "PV1", "1", "E" if emergency else "I"
    pv1[3] = f"WARD^^^{site_code or ''}"
    pv1[4] = admission_method or ""
    pv1[19], pv1[36], pv1[44], pv1[45] = encounter, discharge_method or "", _ts(start), _ts(end)
    segments = [
        f"MSH|^~\\&|PAS|TRUST|PHM|ICB|{_ts(occurred)}||ADT^{code}^ADT_{code}|{message_id}|P|2.4",
        f"EVN|{code}|{_ts(occurred)}",
        f"PID|1||{nhs_number}^^^NHS^NH||PATIENT^SYNTHETIC",
        "|".join(pv1),
    ]
    if diagnosis:
        segments.append(f"DG1|1||{diagnosis}^^I10")
    return "\r".join(segments)


def fhir_encounter(
    resource_id: str,
    version: int,
    status: str,
    nhs_number: str,
    encounter: str,
    updated: datetime,
    *,
    emergency: bool = False,
    start: datetime | None = None,
    end: datetime | None = None,
    admission_method: str | None = None,
    site_code: str | None = None,
    diagnosis: str | None = None,
) -> dict:
    """One Encounter resource (a dict: dump it alone or inside `fhir_bundle`)."""
    enc: dict = {
        "resourceType": "Encounter",
        "id": resource_id,
        "meta": {"versionId": str(version), "lastUpdated": f"{updated:%Y-%m-%dT%H:%M:%S}Z"},
        "status": status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER" if emergency else "IMP"},
        "identifier": [{"system": "https://fhir.example.nhs.uk/Id/encounter", "value": encounter}],
        "subject": {"identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs_number}},
    }
    if start or end:
        enc["period"] = {k: f"{v:%Y-%m-%dT%H:%M:%S}Z" for k, v in (("start", start), ("end", end)) if v}
    if site_code:
        enc["serviceProvider"] = {"identifier": {"system": "https://fhir.nhs.uk/Id/ods-site-code", "value": site_code}}
    if admission_method:
        enc["extension"] = [
            {
                "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-AdmissionMethod",
                "valueCodeableConcept": {"coding": [{"code": admission_method}]},
            }
        ]
    if diagnosis:
        enc["reasonCode"] = [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": diagnosis}]}]
    return enc


def fhir_bundle(bundle_id: str, resources: list[dict]) -> str:
    return json.dumps(
        {"resourceType": "Bundle", "id": bundle_id, "type": "collection", "entry": [{"resource": r} for r in resources]}
    )
