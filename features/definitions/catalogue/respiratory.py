"""COPD and asthma exacerbations: rescue courses, respiratory emergency admissions, days since the last."""

from __future__ import annotations

from features.definitions.catalogue.utilisation import EMERGENCY
from features.definitions.model import EventFeature, Feature, Filter
from features.sources.codes import RESCUE_PACK

RESPIRATORY_ICD10 = ["J40", "J41", "J42", "J43", "J44", "J45", "J46"]
PREDNISOLONE = RESCUE_PACK[0]


def exacerbations(prefix: str = "") -> list[Feature]:
    return [
        EventFeature(
            name=f"{prefix}rescue_courses_12m",
            family="respiratory",
            source="prescriptions",
            date="issue_date",
            window_days=365,
            aggregation="distinct_days",
            where=[Filter(column="bnf_code", values=[PREDNISOLONE])],
            description="Oral prednisolone courses (COPD/asthma rescue) issued in the year before the index date",
        ),
        EventFeature(
            name=f"{prefix}respiratory_admissions_12m",
            family="respiratory",
            source="apc_spells",
            date="admission_date",
            window_days=365,
            where=[EMERGENCY, Filter(column="primary_diagnosis", op="prefix", values=RESPIRATORY_ICD10)],
            description="Emergency admissions for COPD or asthma (ICD-10 J40-J46) in the year before",
        ),
        EventFeature(
            name=f"{prefix}days_since_exacerbation",
            family="respiratory",
            source="prescriptions",
            date="issue_date",
            aggregation="days_since_last",
            default=3650,
            where=[Filter(column="bnf_code", values=[PREDNISOLONE])],
            description="Days since the latest rescue course (3650 when none)",
        ),
    ]
