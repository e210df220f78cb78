"""Emergency admission for an ambulatory care sensitive condition (ACSC) within 12 months: impactability. An ACSC
admission (COPD, heart failure, diabetes complications, a urinary infection, cellulitis, ...; the NHS Outcomes
Framework's list, `features.sources.codes.ACSC_GROUPS`) is one good primary and community care can often prevent,
so this risk points proactive care at the admissions it can change. Shown beside the worklist, which can be
ranked by it ("most likely to have a preventable admission")."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from features.cohorts import CohortConfig, LabelConfig
from features.definitions.catalogue.conditions import conditions
from features.definitions.catalogue.demography import demographics
from features.definitions.catalogue.respiratory import exacerbations
from features.definitions.catalogue.segments import segment
from features.definitions.catalogue.utilisation import ambulatory_care, utilisation
from features.definitions.model import FeatureSet
from features.sources.codes import ACSC_ICD10
from models.specs.base import BaselineRule, DailyUse, ModelSpec, TrainingDefaults, Truth

TOP_SHARE = 0.05  # the share a proactive-care team would act on: the top 5% by this risk


def _prior_acsc_admissions(frame: pd.DataFrame) -> np.ndarray:
    return frame.acsc_admissions_12m.to_numpy(dtype=float)


SPEC = ModelSpec(
    name="acsc_admission",
    title="Emergency admission for an ambulatory care sensitive condition within 12 months",
    outcome="an emergency admission for an ambulatory care sensitive condition within 12 months",
    features=FeatureSet(
        name="acsc_admission",
        description="Predictors of an emergency admission for an ambulatory care sensitive condition (NHS Outcomes "
        "Framework 2.3i chronic, 3a acute) in the 12 months after the index date",
        features=demographics() + conditions() + utilisation() + exacerbations() + ambulatory_care() + [*segment()],
        carried=["ethnic_category", "practice_code", "sex", "age_band", "segment"],
    ),
    cohort=CohortConfig(),
    label=LabelConfig(outcome="emergency", horizon_months=12, diagnoses=list(ACSC_ICD10), name="acsc"),
    horizon_days=365,
    baseline=BaselineRule(
        "prior emergency admissions for an ambulatory care sensitive condition (12 months)", _prior_acsc_admissions
    ),
    truth=Truth("truth_acsc_12m"),
    intended_use=(
        "Rank adults registered with ICS practices by their risk of an emergency admission for an ambulatory care "
        "sensitive condition (one that timely primary or community care can often prevent) in the next 12 months, "
        "so care teams can offer proactive support where it is most likely to prevent an admission. Not for denying "
        "or rationing care, not a diagnosis, and not a measure of a practice's quality."
    ),
    training=TrainingDefaults(
        train_dates=(date(2021, 4, 1), date(2022, 4, 1), date(2023, 4, 1)),
        validation_dates=(date(2024, 4, 1),),
        num_leaves=(7, 15, 31),
        min_child_samples=(50, 200),
        monotone=True,
    ),
    daily=DailyUse(
        kind="column",
        column="acsc_risk",
        top_share=TOP_SHARE,
        rank_title="most likely to have a preventable admission first",
        title="chance of an emergency admission for an ambulatory care sensitive condition in the next 12 months",
    ),
)
