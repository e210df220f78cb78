"""Typed requests and responses shared by the HTTP API and the web pages."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models import specs

MAX_PERSONS = 1_000
MAX_ON_DEMAND_REASONS = 100  # explanations cost ~5 ms a person: beyond the bands, explain at most this many per request
Metric = Literal["emergency_admissions", "ga_beds_occupied", "critical_care_beds_occupied"]
ModelName = Literal[specs.NAMES]  # type: ignore[valid-type]  # every specified model
BESIDE = tuple(s.daily.column for s in specs.columns())  # risks of the models shown beside the worklist's
# the worklist's orders: its own risk, the change, practice, age band, or a risk shown beside it (highest first)
SORTS = ("risk", "change", "practice", "age_band", *BESIDE)
Sort = Literal[SORTS]  # type: ignore[valid-type]


class Band(str, Enum):
    routine = "routine"
    raised = "raised"
    high = "high"
    very_high = "very high"


PersonId = Annotated[
    str,
    Field(
        pattern=r"^[0-9]{1,19}$",
        description="Pseudonymised person id (decimal "
        "digits; a string because it exceeds JavaScript's exact integers).",
    ),
]


class Reason(BaseModel):
    feature: str
    value: float | None
    words: str
    log_odds: float


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    person_ids: list[PersonId] | None = Field(None, max_length=MAX_PERSONS, description="Pseudonymised person ids.")
    records: list[dict[str, Annotated[float, Field(allow_inf_nan=False)] | None]] | None = Field(
        None,
        max_length=MAX_PERSONS,
        description="Feature records (predictor name -> value, finite numbers or null for missing) to score directly.",
    )
    explain: bool = True

    @model_validator(mode="after")
    def _one(self) -> ScoreRequest:
        if bool(self.person_ids) == bool(self.records):
            raise ValueError("give either person_ids or records (one of them, not empty)")
        return self


class ScoredPerson(BaseModel):
    person_id: PersonId | None = None
    risk: float | None = None  # withheld (None) for a person held out for the programme's evaluation
    band: Band | None = None
    rank: int | None = None
    practice_code: str | None = None
    reasons: list[Reason] = Field(default_factory=list)
    held_out: bool = False  # in the evaluation's random holdout: score, band and rank withheld (`note` says why)
    note: str | None = None


class ScoreResponse(BaseModel):
    model: str
    version: str
    snapshot_date: str | None
    results: list[ScoredPerson]


class WorklistRow(BaseModel):
    person_id: PersonId
    practice_code: str
    pcn_code: str
    age_band: str
    sex: str
    segment: str
    conditions: list[str]
    risk: float
    rank: int
    band: Band
    previous_risk: float | None = None
    beside: dict[str, float | None] = Field(
        default_factory=dict,
        description="Risks of the models shown beside the "
        "worklist's, by column (e.g. a flare-up warning, a preventable admission)",
    )
    event_flag: str | None = Field(
        None,
        description="Hospital events since the snapshot, e.g. 'discharged today "
        "after an emergency admission' (serving.batch.delta)",
    )
    reasons: list[Reason]
    in_band_since: str | None = Field(
        None,
        description="First day of the person's unbroken run in a worklist band "
        "over the kept snapshots (None outside the bands).",
    )
    days_in_band: int | None = Field(None, description="Days from in_band_since to the snapshot's day.")
    caseload: list[str] = Field(default_factory=list, description="Teams whose uploaded caseload holds the person.")


class Worklist(BaseModel):
    snapshot_date: str
    index_date: str | None = Field(
        None,
        description="The date everyone's score is as at (data before it): the "
        "snapshot's, or later when hospital events on or after it were applied.",
    )
    events_to: str | None = Field(None, description="When the latest hospital event applied arrived (None: none).")
    model_version: str
    practices: list[str]
    total_matching: int
    reasons_omitted: int = Field(
        0,
        description="Rows outside the worklist bands beyond the first "
        f"{MAX_ON_DEMAND_REASONS} are returned without reasons.",
    )
    rows: list[WorklistRow]
    hidden: int = Field(
        0, description="People matching the filters but hidden by a recorded outcome (see /api/worklist/hidden)."
    )
    history_from: str | None = Field(None, description="The oldest snapshot the in-band runs were read from.")


class SummaryRow(BaseModel):
    group: str
    people: int | None = Field(description="Rounded count; None when hidden by disclosure control.")
    people_display: str = Field(description="The count as shown: rounded with thousands separators, or * when hidden.")
    mean_risk: float | None = Field(description="Mean risk of the group's people; None when the count is hidden or 0.")
    suppressed: bool = False


class Summary(BaseModel):
    snapshot_date: str
    by: str
    unit: str = Field(description="Whose people: the ICS, a PCN, a practice, or a coordinator's practices.")
    people: int | None = Field(description="The unit's people (rounded; None when hidden).")
    policy: dict = Field(description="The disclosure-control rules applied (see docs/information-governance.md).")
    rows: list[SummaryRow]


class Decision(BaseModel):
    """A safety officer's decision on the exact report they read (its SHA-256, as the bias report gives it)."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approved", "rejected"]
    reason: str = Field(min_length=3, max_length=2000)
    report_sha256: str = Field(
        min_length=8,
        max_length=64,
        pattern=r"^[0-9a-f]+$",
        description="The report decided on (or the start of its SHA-256, 8 characters or more).",
    )
    accept_flags: bool = False


class ChangeReview(BaseModel):
    """A safety officer's change-impact review of the configuration now in force (its fingerprint, as shown)."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approved", "rejected"]
    reason: str = Field(min_length=3, max_length=2000)
    configuration_sha256: str = Field(
        min_length=8,
        max_length=64,
        pattern=r"^[0-9a-f]+$",
        description="The configuration reviewed (or the start of its fingerprint).",
    )


class WorklistQuery(BaseModel):
    """A coordinator's worklist filters (the API's query parameters and the Worklist page's form)."""

    practice: list[str] | None = None
    pcn: str | None = None
    age_band: str | None = None
    segment: str | None = None
    condition: str | None = None
    min_band: Band = Band.raised
    top: int = Field(100, ge=1, le=10_000)
    sort: Sort = "risk"
    new_within_days: int | None = Field(
        None,
        ge=1,
        le=366,
        description="Only people who entered a worklist band "
        "less than this many days before the snapshot "
        "(7: new since last week's scores).",
    )
