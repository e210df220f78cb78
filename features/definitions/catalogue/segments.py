"""The population segment (Bridges to Health style), derived from conditions, frailty and palliative care."""

from __future__ import annotations

from features.definitions.expressions import case, col
from features.definitions.model import DerivedFeature, Feature


def segment() -> list[Feature]:
    return [
        DerivedFeature(
            name="segment",
            family="segmentation",
            categorical=True,
            depends_on=[
                "palliative_care_12m",
                "frailty_deficits",
                "ltc_dementia",
                "ltc_heart_failure",
                "ltc_copd",
                "ltc_count",
            ],
            description="Bridges to Health-style segment: end of life, frailty and dementia, organ failure "
            "(heart failure or COPD), complex multimorbidity (3+ conditions), long-term conditions, healthy",
            expression=case(
                (col("palliative_care_12m").eq(1), "end_of_life"),
                (col("frailty_deficits").ge(4) | col("ltc_dementia").eq(1), "frailty_dementia"),
                (col("ltc_heart_failure").eq(1) | col("ltc_copd").eq(1), "organ_failure"),
                (col("ltc_count").ge(3), "complex_multimorbidity"),
                (col("ltc_count").ge(1), "long_term_conditions"),
                otherwise="healthy",
            ),
        )
    ]
