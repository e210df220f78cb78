"""Typed settings of a fairness audit: the operating policy, tolerance, small-group rule, bootstrap."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from phm.core.config import Document

METRICS = ("selection_rate", "tpr", "fnr", "fpr", "ppv", "predicted_to_observed", "auroc", "calibration_slope")
"""Per-group metrics compared with the reference group (ratios and differences)."""

# Reference groups for the standard groupings: the largest or least deprived group, as is usual in
# English health-inequalities reporting. Groupings not named here use their largest group.
DEFAULT_REFERENCES = {
    "ethnicity_broad": "White",
    "ethnicity": "A White British",
    "imd_quintile": "Q5 (least deprived)",
    "core20": "Rest of population",
    "ethnicity_x_deprivation": "White, rest of population",
    "thin_record": "Fuller record",
}


class AuditConfig(Document):
    """How a risk score is audited. Defaults follow DESIGN.md section 7 (Aequitas-style 0.8-1.25)."""

    top_share: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="Operating policy: the highest-risk share of people is flagged for proactive care (0.05 = top 5%).",
    )
    threshold: float | None = Field(None, description="A fixed risk threshold instead of the top-share policy.")
    tolerance: tuple[float, float] = Field(
        (0.8, 1.25), description="Ratios to the reference group outside this band are examined."
    )
    flag_metrics: list[str] = Field(
        ["tpr", "predicted_to_observed"],
        description="Metrics whose ratios can raise a flag. Proactive care is an assistive intervention, so the "
        "harms judged by default are missing people who go on to need care (true positive rate, as in the "
        "Aequitas fairness tree) and under- or over-estimating a group's risk (predicted / observed). FPR and "
        "PPV are always shown and can be added here.",
    )
    calibration_tolerance: tuple[float, float] = Field(
        (0.8, 1.25),
        description="Observed / expected outcomes for everyone outside this band (with an interval "
        "excluding 1) flags a score miscalibrated for everyone.",
    )
    slope_tolerance: tuple[float, float] = Field(
        (0.7, 1.43),
        description="A calibration slope for everyone outside this band (with an interval excluding 1) "
        "flags risks that are too extreme (below) or too modest (above).",
    )
    simultaneous: bool = Field(
        True,
        description="Ratio intervals hold simultaneously for all judged comparisons "
        "of a grouping (Bonferroni), so chance alone flags a parity group in at most "
        "1 - level of audits.",
    )
    min_group_size: int = Field(100, ge=1, description="Smaller groups are reported and marked, never judged.")
    min_group_events: int = Field(20, ge=1, description="Groups with fewer outcomes are marked small.")
    bootstrap_draws: int = Field(1000, ge=20, le=20_000)
    level: float = Field(0.95, gt=0.5, lt=1)
    seed: int = 1
    score_bins: int = Field(200, ge=50, le=5000, description="Quantile bins of the score used by the bootstrap.")
    curve_shares: list[float] = Field([0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5])
    references: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_REFERENCES))
    adjust_for_age_sex: bool = Field(
        True, description="Also compare with the reference group re-weighted to each group's age and sex mix."
    )
    need_at_equal_score: bool = Field(
        True,
        description="Compare groups on need that does not depend on service use "
        "(GP-coded conditions, frailty, deaths) within each risk decile, and flag a group "
        "sicker at the same score (needs one row per person and those columns).",
    )
    mitigation: Literal["none", "group_thresholds"] = Field(
        "none", description="Optional post-processing shown side by side; never applied to the deployed model."
    )
    mitigation_grouping: str = "ethnicity_broad"

    @model_validator(mode="after")
    def _check(self) -> AuditConfig:
        for name in ("tolerance", "calibration_tolerance", "slope_tolerance"):
            lo, hi = getattr(self, name)
            if not 0 < lo < 1 < hi:
                raise ValueError(f"{name} must be (low < 1 < high), got {getattr(self, name)}")
        unknown = set(self.flag_metrics) - set(METRICS)
        if unknown:
            raise ValueError(f"unknown flag metrics {sorted(unknown)}; choose from {list(METRICS)}")
        if any(not 0 < s < 1 for s in self.curve_shares):
            raise ValueError("curve_shares must lie between 0 and 1")
        return self
