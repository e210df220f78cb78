"""What an audit produces: per-group metrics, comparisons with the reference group, curves, coverage,
flags, hazards and mitigation. The JSON twin of the bias report is `AuditResult.model_dump_json()`."""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, Field

from evaluation.fairness.config import AuditConfig

Status = Literal[
    "reference",
    "flag",
    "explained by age and sex",
    "uncertain",
    "small group",
    "within tolerance",
    "not estimable",
    "shown only",
    "less need at equal score",
]


class MetricValue(BaseModel):
    value: float | None
    ci: tuple[float | None, float | None] = (None, None)


class GroupRow(BaseModel):
    group: str
    n: int
    events: int
    people: int | None = None
    people_with_events: int | None = None
    is_reference: bool = False
    small: bool = False
    metrics: dict[str, MetricValue]
    share_outside_reference_strata: float = Field(
        0.0, description="Share of this group in age-sex strata the reference group lacks (not standardisable)."
    )


class Comparison(BaseModel):
    grouping: str
    group: str
    metric: str
    value: float | None
    reference_group: str
    reference_value: float | None
    ratio: float | None
    ratio_ci: tuple[float | None, float | None]
    ratio_ci_level: float = 0.95
    difference: float | None
    adjusted_ratio: float | None = None
    adjusted_ratio_ci: tuple[float | None, float | None] = (None, None)
    status: Status


class CurvePoint(BaseModel):
    group: str
    share: float
    threshold: float
    selection_rate: float | None
    tpr: float | None
    fpr: float | None
    ppv: float | None


class GroupingResult(BaseModel):
    name: str
    title: str
    reference: str
    reference_note: str = Field("", description="Why the stated reference group was not used (absent or small).")
    absent: list[str] = Field(default_factory=list, description="Expected groups with no one in the data.")
    adjusted: bool
    judged: list[str] = Field(default_factory=list, description="Metrics that can flag in this grouping.")
    judged_level: float = Field(0.95, description="Confidence level of each judged ratio interval (simultaneous).")
    groups: list[GroupRow]
    comparisons: list[Comparison]
    curves: list[CurvePoint]
    coverage: list[dict]


class Hazard(BaseModel):
    """A DCB0129-style hazard log entry raised by a flag."""

    hazard_id: str
    hazard: str
    cause: str
    effect: str
    existing_controls: str
    severity: str
    likelihood: str
    risk_rating: int = Field(description="1 (very low) to 5 (very high), from severity x likelihood.")
    residual_risk: str
    flags: list[str]


class MitigationRow(BaseModel):
    group: str
    n: int
    threshold_before: float
    threshold_after: float
    before: dict[str, float | None]
    after: dict[str, float | None]


class Mitigation(BaseModel):
    method: str
    grouping: str
    target: str
    fitted_on: str
    evaluated_on: str
    rows: list[MitigationRow]
    overall_before: dict[str, float | None]
    overall_after: dict[str, float | None]
    notes: list[str]


class NeedCell(BaseModel):
    """Mean need of one group in one score decile, with its interval."""

    group: str
    decile: int
    n: int
    mean: MetricValue


class NeedGroupingResult(BaseModel):
    """Need at equal score for one grouping and one measure of need (see `need.py`)."""

    name: str
    title: str
    reference: str
    measure: str
    measure_title: str
    judged_level: float
    comparisons: list[Comparison]
    deciles: list[NeedCell]


class AbsoluteResult(BaseModel):
    """Performance for everyone (not between groups): discrimination and absolute calibration with intervals."""

    metrics: dict[str, MetricValue]
    bands: dict[str, tuple[float, float]]
    flags: list[Comparison] = Field(default_factory=list)


class AuditResult(BaseModel):
    subject: dict
    config: AuditConfig
    created_at: str
    population: dict
    groupings: list[GroupingResult]
    flags: list[Comparison]
    uncertain: list[Comparison]
    summary: list[str]
    hazards: list[Hazard]
    mitigation: Mitigation | None = None
    need: list[NeedGroupingResult] = Field(default_factory=list, description="Need at equal score (risk models).")
    absolute: AbsoluteResult | None = None
    published_counts: dict[str, dict[str, dict[str, int | None]]] = Field(
        default_factory=dict,
        description="People and people with the outcome per group under the disclosure "
        "policy (None = hidden), for the publishable report.",
    )
    report_sha256: str = ""

    @property
    def passed(self) -> bool:
        return not self.flags

    def content_hash(self) -> str:
        """SHA-256 of the canonical JSON without the hash field (what a sign-off refers to)."""
        data = self.model_dump(mode="json", exclude={"report_sha256"})
        return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def sealed(self) -> AuditResult:
        return self.model_copy(update={"report_sha256": self.content_hash()})
