"""Emergency admission within 12 months of the index date (the target of SPARRA and QAdmissions): ranks adults
for the coordinators' daily worklist."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from features.cohorts import CohortConfig, LabelConfig
from features.definitions.catalogue.conditions import conditions
from features.definitions.catalogue.demography import demographics
from features.definitions.catalogue.respiratory import exacerbations
from features.definitions.catalogue.segments import segment
from features.definitions.catalogue.utilisation import utilisation
from features.definitions.model import FeatureSet
from models.specs.base import BaselineRule, DailyUse, ModelSpec, TrainingDefaults, Truth


def _prior_admissions(frame: pd.DataFrame) -> np.ndarray:
    return frame.emergency_admissions_12m.to_numpy(dtype=float)


SPEC = ModelSpec(
    name="emergency_admission",
    title="Emergency admission within 12 months",
    outcome="an emergency admission within 12 months",
    features=FeatureSet(
        name="emergency_admission",
        description="Predictors of an emergency admission in the 12 months after the index date (SPARRA-like)",
        features=demographics() + conditions() + utilisation() + exacerbations() + [*segment()],
        carried=["ethnic_category", "practice_code", "sex", "age_band", "segment"],
    ),
    cohort=CohortConfig(),
    label=LabelConfig(outcome="emergency", horizon_months=12),
    horizon_days=365,
    baseline=BaselineRule("prior emergency admissions (12 months)", _prior_admissions),
    truth=Truth("truth_emergency_12m"),
    intended_use=(
        "Rank adults registered with ICS practices by their risk of an emergency hospital admission in the next "
        "12 months, so care coordinators can offer proactive support (case management, medication review, "
        "care planning) to the people most likely to benefit. Not for denying or rationing care, and not a "
        "diagnosis."
    ),
    training=TrainingDefaults(
        train_dates=(date(2021, 4, 1), date(2022, 4, 1), date(2023, 4, 1)),
        validation_dates=(date(2024, 4, 1),),
        num_leaves=(7, 15, 31),
        min_child_samples=(50, 200),
        monotone=True,
    ),
    daily=DailyUse(
        kind="worklist",
        bands=(("very high", 0.005), ("high", 0.02), ("raised", 0.05)),
        title="chance of an emergency admission in the next 12 months",
    ),
)
