"""Hostile event messages for the ingest tests: small, but hard on the readers."""

from __future__ import annotations

import json
from datetime import datetime

from features.events.emit import fhir_encounter


def nested_encounter_json(nhs_number: str, depth: int = 150, when: datetime = datetime(2026, 1, 5, 9)) -> str:
    """An Encounter of a few kilobytes whose extensions nest `depth` deep (deeper than the FHIR validator
    recurses), with `nhs_number` as its subject."""
    enc = fhir_encounter(
        "deep", 1, "in-progress", nhs_number, "DV1", when, start=when, admission_method="21", site_code="RXX01"
    )
    ext: dict = {"url": "https://example.org/x", "valueString": "y"}
    for _ in range(depth):
        ext = {"url": "https://example.org/x", "extension": [ext]}
    enc["extension"].append(ext)
    return json.dumps(enc)
