"""Typed configuration of the synthetic ICS generator."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from phm.core.config import Document, Strict

from features.sources.codes import BROAD_ETHNIC_GROUP

UNDER_RECORD_GROUPS = sorted(set(BROAD_ETHNIC_GROUP.values()) - {"Unknown"}) + ["core20"]


class DefectConfig(Strict):
    """Known problems injected on purpose, so tests can prove the loader and audit catch them."""

    malformed_share: float = Field(0.0, ge=0.0, le=0.5, description="Share of rows corrupted per table.")
    under_record_group: str | None = Field(
        None, description=f"Group whose diagnoses go under-recorded in GP data: {UNDER_RECORD_GROUPS}."
    )
    under_record_share: float = Field(0.0, ge=0.0, le=1.0, description="Share of that group's diagnoses left uncoded.")

    @field_validator("under_record_group")
    @classmethod
    def _known_group(cls, value: str | None) -> str | None:
        if value is not None and value not in UNDER_RECORD_GROUPS:
            raise ValueError(f"under_record_group must be one of {UNDER_RECORD_GROUPS}, not {value!r}")
        return value


class ShiftConfig(Strict):
    """A change over time (for monitoring tests): from `start`, emergency admissions of one broad ethnic
    group (or everyone) become `factor` times as likely, as after a change in admission thresholds."""

    start: date
    factor: float = Field(2.0, gt=0.0, le=20.0)
    group: str | None = Field(
        None, description=f"Broad ethnic group affected (None: everyone): {UNDER_RECORD_GROUPS[:-1]}."
    )

    @field_validator("group")
    @classmethod
    def _known_group(cls, value: str | None) -> str | None:
        if value is not None and value not in UNDER_RECORD_GROUPS[:-1]:
            raise ValueError(f"shift group must be one of {UNDER_RECORD_GROUPS[:-1]}, not {value!r}")
        return value


class ProgrammeConfig(Strict):
    """A care-coordination programme (for evaluation with a known answer): from `start`, each month the chosen
    practices (or all) offer enrolment to people in the top `top_share` by a risk score, highest first, until
    `capacity` people a month have enrolled; each offer is taken up with probability `uptake`. Enrolment (for
    the rest of the history) multiplies the person's emergency-admission hazard by `factor`. A random `holdout`
    share of the people the rule picks are never offered (Liley et al.'s safe-learning holdout), recorded in truth."""

    start: date
    practices: list[str] | None = Field(None, description="Practice codes taking part (None: every practice).")
    top_share: float = Field(0.05, gt=0.0, le=0.5, description="Share of registered people eligible by risk score.")
    capacity: int = Field(100, ge=1, description="Most new enrolments a month (whole ICS).")
    uptake: float = Field(0.7, gt=0.0, le=1.0, description="Probability an offer is accepted.")
    factor: float = Field(0.75, gt=0.0, le=5.0, description="True multiplier of the enrolled's emergency hazard.")
    holdout: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Share of the people the rule picks that are held out "
        "at random: never offered, kept as an untreated comparison for safe retraining.",
    )
    group_factors: dict[str, float] = Field(
        default_factory=dict,
        description=f"True factor for the enrolled of a group instead of `factor` (a group "
        f"of {UNDER_RECORD_GROUPS}); a person in more than one takes the first listed.",
    )

    @field_validator("group_factors")
    @classmethod
    def _known_groups(cls, value: dict[str, float]) -> dict[str, float]:
        for group, factor in value.items():
            if group not in UNDER_RECORD_GROUPS:
                raise ValueError(f"programme group must be one of {UNDER_RECORD_GROUPS}, not {group!r}")
            if not 0 < factor <= 5:
                raise ValueError(f"programme factor of {group} must be in (0, 5], not {factor!r}")
        return value


class AccessBarrierConfig(Strict):
    """An access barrier: one group uses hospitals `factor` times as often as others with the same need (emergency
    admissions, A&E, outpatient and elective care), while its conditions, frailty and deaths are unchanged. Tests use
    it to prove the audit finds a group that is sicker at the same score."""

    group: str = Field(description=f"Broad ethnic group, or core20: {UNDER_RECORD_GROUPS}.")
    factor: float = Field(0.5, gt=0.0, lt=1.0, description="Hospital use for the same need (0.5 = half as often).")

    @field_validator("group")
    @classmethod
    def _known_group(cls, value: str) -> str:
        if value not in UNDER_RECORD_GROUPS:
            raise ValueError(f"access barrier group must be one of {UNDER_RECORD_GROUPS}, not {value!r}")
        return value


class GeneratorConfig(Document):
    """What to generate. Same configuration and seed give the same bytes."""

    persons: int = Field(20_000, ge=200, le=60_000_000)
    seed: int = 1
    start: date = date(2019, 4, 1)
    end: date = date(2025, 3, 31)
    index_dates: list[date] = Field(default_factory=lambda: [date(2022, 4, 1), date(2023, 4, 1), date(2024, 4, 1)])
    monitoring_start: date = date(2023, 4, 1)
    sites: int | None = Field(None, ge=1, le=40, description="Acute sites; default grows with population.")
    practices: int | None = Field(None, ge=2, description="GP practices; default ~1 per 8,000 people.")
    out_of_area_share: float = Field(0.01, ge=0.0, le=0.2, description="Hospital activity of non-residents (unlinked).")
    file_format: Literal["parquet", "csv"] = "parquet"
    defects: DefectConfig = Field(default_factory=DefectConfig)
    shift: ShiftConfig | None = None
    programme: ProgrammeConfig | None = None
    access_barrier: AccessBarrierConfig | None = None

    @model_validator(mode="after")
    def _dates_consistent(self) -> "GeneratorConfig":
        if (self.end - self.start).days < 5 * 365:
            raise ValueError("the synthetic history must cover at least five years (start to end)")
        for d in self.index_dates:
            if d.day != 1:
                raise ValueError(f"index date {d} must be the first day of a month")
            follow_up_end = date(d.year + 1, d.month, 1) - timedelta(days=1)
            if not self.start < d or follow_up_end > self.end:
                raise ValueError(f"index date {d} needs history before it and 12 months of follow-up by {self.end}")
        if not self.start <= self.monitoring_start < self.end:
            raise ValueError("monitoring_start must fall inside the history")
        if self.programme is not None and not self.start < self.programme.start < self.end:
            raise ValueError("programme start must fall inside the history")
        return self

    @property
    def n_practices(self) -> int:
        return self.practices or max(4, round(self.persons / 8_000))

    @property
    def n_sites(self) -> int:
        return self.sites or int(min(8, max(3, round(self.persons / 200_000) + 2)))
