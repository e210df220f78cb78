"""What monitoring reads and writes: the typed alert thresholds (`MonitorConfig`, in the settings schema), an
alert, and the result of one monitoring run."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from evaluation.fairness.config import AuditConfig
from phm.core.config import Document

Kind = Literal["performance", "calibration", "fairness", "drift", "age"]


class MonitorConfig(Document):
    """Alert thresholds (defaults follow common practice: PSI 0.25 is a major shift)."""

    auroc_drop: float = Field(0.05, gt=0, description="Alert when realised AUROC falls this far below sign-off.")
    observed_to_expected: tuple[float, float] = Field((0.8, 1.25), description="Tolerated observed/expected events.")
    calibration_slope: tuple[float, float] = Field((0.7, 1.3), description="Tolerated realised calibration slope.")
    psi_alert: float = Field(0.25, gt=0, description="Population stability index that raises a drift alert.")
    group_psi_alert: float = Field(
        0.15,
        gt=0,
        description="PSI of the score or a predictor within a broad ethnic group "
        "that alerts (a moderate shift: a community's change is diluted overall).",
    )
    min_group_people: int = Field(200, ge=20, description="Smaller groups are not judged for drift.")
    psi_noise_level: float = Field(
        1e-4,
        gt=0,
        lt=1,
        description="A PSI alerts only above what sampling alone gives two same-distribution samples of those sizes "
        "with this probability (and above its threshold): a group of a few hundred people crosses the thresholds "
        "by chance.",
    )
    mix_change: float = Field(0.05, gt=0, description="Alert when a group's share of the population moves this much.")
    missing_change: float = Field(0.10, gt=0, description="Alert when a predictor's missing share moves this much.")
    max_age_days: int = Field(400, ge=30, description="Retraining is due when the model is older than this.")
    clock_features: dict[str, float] = Field(
        default_factory=lambda: {"registered_days": 1.0, "age": 1 / 365.25},
        description="Predictors that grow with time (per day): the reference population is aged to the monitoring "
        "date before comparing, so the passage of time is not reported as drift.",
    )
    fairness_groupings: list[str] = Field(
        default_factory=lambda: ["ethnicity_broad", "ethnicity", "imd_quintile", "core20", "ethnicity_x_deprivation"],
        description="Groupings whose fairness is monitored (ethnicity and deprivation).",
    )
    fairness: AuditConfig = Field(default_factory=lambda: AuditConfig(bootstrap_draws=300))


class Alert(BaseModel):
    kind: Kind
    metric: str
    subject: str = Field(description="The feature, group or 'overall' the alert is about.")
    value: float | None
    threshold: str
    message: str


class MonitorResult(BaseModel):
    model: str
    version: str
    as_of: str
    created_at: str
    outcome_index_date: str | None
    reference_index_date: str
    performance: dict[str, float | None]
    signoff: dict[str, float | None]
    by_band: list[dict]
    fairness_flags: list[dict]
    drift: list[dict]
    group_drift: list[dict]
    mix: list[dict]
    alerts: list[Alert]
    retrain_due: bool
    retrain_reasons: list[str]
    programme: dict = {}  # realised observed/expected by listing status (`programme_view`), when anyone was listed
    not_judged: str | None = None  # why realised performance, calibration and fairness were not judged (no outcomes)
