"""Who the person is: age and its band, sex, deprivation, ethnic category, practice and time registered."""

from __future__ import annotations

from features.definitions.expressions import case, col
from features.definitions.model import AttributeFeature, DerivedFeature, Feature

AGE_BANDS = [(18, "0-17"), (40, "18-39"), (55, "40-54"), (65, "55-64"), (75, "65-74"), (85, "75-84")]  # (below, band)


def demographics() -> list[Feature]:
    return [
        AttributeFeature(
            name="age", family="demography", attribute="age", description="Age in whole years at the index date"
        ),
        DerivedFeature(
            name="age_band",
            family="demography",
            categorical=True,
            depends_on=["age"],
            description="Age band (18-39, 40-54, 55-64, 65-74, 75-84, 85+; 0-17 for children)",
            expression=case(*((col("age").lt(upper), band) for upper, band in AGE_BANDS), otherwise="85+"),
        ),
        AttributeFeature(
            name="sex",
            family="demography",
            attribute="sex",
            categorical=True,
            description="Sex as recorded (M, F, I, U)",
        ),
        DerivedFeature(
            name="female",
            family="demography",
            depends_on=["sex"],
            description="1 if recorded female",
            expression=case((col("sex").eq("F"), 1), otherwise=0),
        ),
        AttributeFeature(
            name="imd_decile",
            family="deprivation",
            attribute="imd_decile",
            description="IMD 2019 decile of the home LSOA (1 = most deprived; empty if unknown)",
        ),
        DerivedFeature(
            name="core20",
            family="deprivation",
            depends_on=["imd_decile"],
            description="1 if living in the most deprived 20% of areas nationally (IMD deciles 1-2)",
            expression=case((col("imd_decile").le(2), 1), otherwise=0),
        ),
        AttributeFeature(
            name="ethnic_category",
            family="demography",
            attribute="ethnic_category",
            categorical=True,
            description="Ethnic category as recorded (NHS Data Dictionary; carried for the fairness audit)",
        ),
        AttributeFeature(
            name="practice_code",
            family="organisation",
            attribute="practice_code",
            categorical=True,
            description="Registered GP practice (carried for scope and reporting)",
        ),
        AttributeFeature(
            name="registered_days",
            family="demography",
            attribute="registered_days",
            description="Days registered with the practice before the index date",
        ),
    ]
