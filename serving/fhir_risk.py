"""Scores as FHIR R4 `RiskAssessment` resources, for a GP system or shared care record: the person by pseudonym,
the model and version (`method`), the probability and band (`prediction`), the reasons (`basis`, as displays,
and `prediction.rationale`), the date the score is as at (the snapshot's, or its delta's later index date) and
the horizon. Plain dicts shaped to the R4 specification (the tests validate them with `fhir.resources`); the
pseudonym system names this installation's keyed ids."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta

import pandas as pd

from models import specs
from serving.batch.store import worklist_version
from serving.queries import parse_reasons

PSEUDONYM_SYSTEM = "urn:phm-intelligence:person-pseudonym"
MODEL_SYSTEM = "urn:phm-intelligence:risk-model"
BAND_SYSTEM = "urn:phm-intelligence:worklist-band"


def risk_assessment(row, meta: dict) -> dict:
    """One score row (a namedtuple or Series of the snapshot's scores) -> a RiskAssessment resource."""
    spec = specs.get(meta["worklist_model"])
    version = worklist_version(meta)
    day = date.fromisoformat(meta.get("index_date") or meta["date"])  # the date the score is as at (a delta's)
    person = str(int(row.person_id))
    words = [r.words for r in parse_reasons(row.reasons)] if isinstance(row.reasons, str) else []
    prediction = {
        "outcome": {"text": spec.outcome},
        "probabilityDecimal": float(row.risk),
        "qualitativeRisk": {"coding": [{"system": BAND_SYSTEM, "code": str(row.band)}], "text": str(row.band)},
        "whenPeriod": {"start": day.isoformat(), "end": (day + timedelta(days=spec.horizon_days)).isoformat()},
    }
    if words:
        prediction["rationale"] = "; ".join(words)
    resource = {
        "resourceType": "RiskAssessment",
        "id": f"{spec.name.replace('_', '-')}-{version}-{day:%Y%m%d}-{person}",
        "status": "final",
        "subject": {"identifier": {"system": PSEUDONYM_SYSTEM, "value": person}},
        "occurrenceDateTime": day.isoformat(),
        "method": {
            "coding": [{"system": MODEL_SYSTEM, "code": spec.name, "version": str(version), "display": spec.title}],
            "text": f"{spec.title}, model version {version}",
        },
        "prediction": [prediction],
        "note": [
            {"text": f"Rank {int(row.rank)} in the ICS; scored by {spec.name} version {version} on {day.isoformat()}."}
        ],
    }
    if words:
        resource["basis"] = [{"display": w} for w in words]
    flag = getattr(row, "event_flag", None)
    if isinstance(flag, str) and flag:
        resource["note"].append({"text": f"Since the snapshot: {flag}."})
    return resource


def ndjson(scores: pd.DataFrame, meta: dict) -> Iterator[str]:
    """Bulk export: one RiskAssessment a line (FHIR bulk data's NDJSON)."""
    for row in scores.itertuples(index=False):
        yield json.dumps(risk_assessment(row, meta), separators=(",", ":")) + "\n"
