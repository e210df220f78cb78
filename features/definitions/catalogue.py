"""The declared predictors, by family (demography, conditions, hospital use, exacerbations, segments, home
monitoring). Each model specification (`models/specs/`) picks the families and features of its feature set.

Every definition here is data; `phm features list` prints them for clinicians.
"""

from __future__ import annotations

from features.sources.codes import (
    ACSC_ICD10,
    CONDITIONS,
    EMERGENCY_ADMISSION_METHODS,
    FRAILTY_DEFICITS,
    RESCUE_PACK,
)
from features.definitions.expressions import add, case, col, const, greatest, substr
from features.definitions.model import (
    AttributeFeature,
    DerivedFeature,
    EventFeature,
    Feature,
    Filter,
)

EMERGENCY = Filter(column="admission_method", op="in", values=list(EMERGENCY_ADMISSION_METHODS))
RESPIRATORY_ICD10 = ["J40", "J41", "J42", "J43", "J44", "J45", "J46"]
PREDNISOLONE = RESCUE_PACK[0]
AGE_BANDS = [(18, "0-17"), (40, "18-39"), (55, "40-54"), (65, "55-64"), (75, "65-74"), (85, "75-84")]  # (below, band)
MONITORING_MEASURES = {
    "spo2": "oxygen saturation (%)",
    "fev1_pct_predicted": "FEV1 (% predicted)",
    "peak_flow_pct_predicted": "peak flow (% predicted)",
    "heart_rate": "heart rate (beats/min)",
    "symptom_score": "symptom score (0-10)",
    "steps": "daily steps",
}


def demographics() -> list[Feature]:
    return [
        AttributeFeature(name="age", family="demography", attribute="age", description="Age in whole years at the index date"),
        DerivedFeature(name="age_band", family="demography", categorical=True, depends_on=["age"],
                       description="Age band (18-39, 40-54, 55-64, 65-74, 75-84, 85+; 0-17 for children)",
                       expression=case(*((col("age").lt(upper), band) for upper, band in AGE_BANDS), otherwise="85+")),
        AttributeFeature(name="sex", family="demography", attribute="sex", categorical=True,
                         description="Sex as recorded (M, F, I, U)"),
        DerivedFeature(name="female", family="demography", depends_on=["sex"], description="1 if recorded female",
                       expression=case((col("sex").eq("F"), 1), otherwise=0)),
        AttributeFeature(name="imd_decile", family="deprivation", attribute="imd_decile",
                         description="IMD 2019 decile of the home LSOA (1 = most deprived; empty if unknown)"),
        DerivedFeature(name="core20", family="deprivation", depends_on=["imd_decile"],
                       description="1 if living in the most deprived 20% of areas nationally (IMD deciles 1-2)",
                       expression=case((col("imd_decile").le(2), 1), otherwise=0)),
        AttributeFeature(name="ethnic_category", family="demography", attribute="ethnic_category", categorical=True,
                         description="Ethnic category as recorded (NHS Data Dictionary; carried for the fairness audit)"),
        AttributeFeature(name="practice_code", family="organisation", attribute="practice_code", categorical=True,
                         description="Registered GP practice (carried for scope and reporting)"),
        AttributeFeature(name="registered_days", family="demography", attribute="registered_days",
                         description="Days registered with the practice before the index date"),
    ]


def conditions() -> list[Feature]:
    feats: list[Feature] = []
    for c in CONDITIONS:
        feats.append(EventFeature(
            name=f"ltc_{c.key}_gp", family="long-term conditions", source="gp_events", date="event_date",
            where=[Filter(column="code", values=[c.snomed])], aggregation="exists",
            description=f"{c.label} coded in the GP record (SNOMED {c.snomed})"))
        feats.append(EventFeature(
            name=f"ltc_{c.key}_hosp", family="long-term conditions", source="apc_spells", date="admission_date",
            where=[Filter(column="primary_diagnosis", op="prefix", values=list(c.icd10))], aggregation="exists",
            description=f"{c.label} as the primary diagnosis of a hospital spell (ICD-10 {', '.join(c.icd10)})"))
        feats.append(DerivedFeature(
            name=f"ltc_{c.key}", family="long-term conditions", depends_on=[f"ltc_{c.key}_gp", f"ltc_{c.key}_hosp"],
            description=f"{c.label} recorded in GP or hospital data before the index date",
            expression=greatest(col(f"ltc_{c.key}_gp"), col(f"ltc_{c.key}_hosp"))))
    keys = [f"ltc_{c.key}" for c in CONDITIONS]
    feats.append(DerivedFeature(name="ltc_count", family="long-term conditions", depends_on=keys,
                                description="Number of the long-term conditions above",
                                expression=add(*map(col, keys))))
    feats.append(EventFeature(
        name="frailty_deficits", family="frailty", source="gp_events", date="event_date",
        where=[Filter(column="code", values=list(FRAILTY_DEFICITS))], aggregation="count_distinct", value="code",
        description="Distinct frailty deficits ever coded (eFI-style: falls, incontinence, mobility, ...)"))
    return feats


def utilisation() -> list[Feature]:
    feats: list[Feature] = []
    for days, label in ((90, "3m"), (365, "12m")):
        feats += [
            EventFeature(name=f"emergency_admissions_{label}", family="hospital use", source="apc_spells",
                         date="admission_date", where=[EMERGENCY], window_days=days,
                         description=f"Emergency admissions (methods 21-2D) in the {days} days before the index date"),
            EventFeature(name=f"emergency_bed_days_{label}", family="hospital use", source="apc_spells",
                         date="admission_date", end="discharge_date", where=[EMERGENCY], window_days=days,
                         aggregation="bed_days",
                         description=f"Days in hospital after emergency admission within the {days} days before the index date"),
        ]
    feats += [
        EventFeature(name="elective_admissions_12m", family="hospital use", source="apc_spells", date="admission_date",
                     where=[Filter(column="admission_method", values=["11", "12", "13"])], window_days=365,
                     description="Elective admissions (methods 11-13) in the year before the index date"),
        EventFeature(name="days_since_emergency_admission", family="hospital use", source="apc_spells",
                     date="admission_date", where=[EMERGENCY], aggregation="days_since_last", default=3650,
                     description="Days since the latest emergency admission (3650 when none)"),
        EventFeature(name="critical_care_days_12m", family="hospital use", source="apc_spells", date="admission_date",
                     window_days=365, aggregation="sum", value="critical_care_days",
                     description="Critical care days in spells admitted in the year before the index date"),
        EventFeature(name="ae_attendances_12m", family="A&E", source="ae_attendances", date="arrival_time",
                     window_days=365, description="A&E attendances in the year before the index date"),
        EventFeature(name="ae_high_acuity_12m", family="A&E", source="ae_attendances", date="arrival_time",
                     window_days=365, where=[Filter(column="acuity", values=[1, 2])],
                     description="A&E attendances triaged immediate or very urgent (acuity 1-2) in the year before"),
        EventFeature(name="outpatient_attendances_12m", family="outpatients", source="op_appointments",
                     date="appointment_date", window_days=365,
                     where=[Filter(column="attendance_status", values=["ATTENDED"])],
                     description="Outpatient appointments attended in the year before the index date"),
        EventFeature(name="outpatient_dna_12m", family="outpatients", source="op_appointments", date="appointment_date",
                     window_days=365, where=[Filter(column="attendance_status", values=["DNA"])],
                     description="Outpatient appointments missed (did not attend) in the year before the index date"),
        EventFeature(name="medicine_classes_12m", family="medicines", source="prescriptions", date="issue_date",
                     window_days=365, aggregation="count_distinct", value=substr(col("bnf_code"), 1, 4),
                     description="Distinct medicine classes (BNF sections) issued in the year before the index date"),
        EventFeature(name="community_contacts_12m", family="community and mental health", source="community_contacts",
                     date="contact_date", window_days=365,
                     description="Community health contacts in the year before the index date"),
        EventFeature(name="palliative_care_12m", family="community and mental health", source="community_contacts",
                     date="contact_date", window_days=365, aggregation="exists",
                     where=[Filter(column="service", values=["palliative_care"])],
                     description="Any palliative care contact in the year before the index date"),
        EventFeature(name="mh_contacts_12m", family="community and mental health", source="mh_contacts",
                     date="contact_date", window_days=365,
                     description="Mental health service contacts in the year before the index date"),
        EventFeature(name="social_care_package", family="wider determinants", source="social_care", date="start_date",
                     end="end_date", aggregation="active_at_index",
                     description="An adult social care package active on the index date"),
        EventFeature(name="housing_flag", family="wider determinants", source="housing", date="recorded_date",
                     aggregation="exists",
                     description="Any housing flag ever recorded (temporary accommodation, overcrowding, homeless, poor condition)"),
    ]
    return feats


def exacerbations(prefix: str = "") -> list[Feature]:
    return [
        EventFeature(name=f"{prefix}rescue_courses_12m", family="respiratory", source="prescriptions", date="issue_date",
                     window_days=365, aggregation="distinct_days", where=[Filter(column="bnf_code", values=[PREDNISOLONE])],
                     description="Oral prednisolone courses (COPD/asthma rescue) issued in the year before the index date"),
        EventFeature(name=f"{prefix}respiratory_admissions_12m", family="respiratory", source="apc_spells",
                     date="admission_date", window_days=365,
                     where=[EMERGENCY, Filter(column="primary_diagnosis", op="prefix", values=RESPIRATORY_ICD10)],
                     description="Emergency admissions for COPD or asthma (ICD-10 J40-J46) in the year before"),
        EventFeature(name=f"{prefix}days_since_exacerbation", family="respiratory", source="prescriptions",
                     date="issue_date", aggregation="days_since_last", default=3650,
                     where=[Filter(column="bnf_code", values=[PREDNISOLONE])],
                     description="Days since the latest rescue course (3650 when none)"),
    ]


def ambulatory_care() -> list[Feature]:
    """Emergency admissions for ambulatory care sensitive conditions (NHS Outcomes Framework 2.3i and 3a)."""
    acsc = [EMERGENCY, Filter(column="primary_diagnosis", op="prefix", values=list(ACSC_ICD10))]
    return [
        EventFeature(name="acsc_admissions_12m", family="hospital use", source="apc_spells", date="admission_date",
                     window_days=365, where=acsc,
                     description="Emergency admissions for an ambulatory care sensitive condition (NHS Outcomes "
                                 "Framework 2.3i chronic, 3a acute) in the year before the index date"),
        EventFeature(name="days_since_acsc_admission", family="hospital use", source="apc_spells", date="admission_date",
                     where=acsc, aggregation="days_since_last", default=3650,
                     description="Days since the latest emergency admission for an ambulatory care sensitive "
                                 "condition (3650 when none)"),
    ]


def segment() -> list[Feature]:
    return [DerivedFeature(
        name="segment", family="segmentation", categorical=True,
        depends_on=["palliative_care_12m", "frailty_deficits", "ltc_dementia", "ltc_heart_failure", "ltc_copd",
                    "ltc_count"],
        description="Bridges to Health-style segment: end of life, frailty and dementia, organ failure "
                    "(heart failure or COPD), complex multimorbidity (3+ conditions), long-term conditions, healthy",
        expression=case(
            (col("palliative_care_12m").eq(1), "end_of_life"),
            (col("frailty_deficits").ge(4) | col("ltc_dementia").eq(1), "frailty_dementia"),
            (col("ltc_heart_failure").eq(1) | col("ltc_copd").eq(1), "organ_failure"),
            (col("ltc_count").ge(3), "complex_multimorbidity"),
            (col("ltc_count").ge(1), "long_term_conditions"),
            otherwise="healthy"))]


def monitoring() -> list[Feature]:
    feats: list[Feature] = []
    for days in (7, 14):
        for measure, label in MONITORING_MEASURES.items():
            for agg in ("mean", "std", "slope"):
                feats.append(EventFeature(
                    name=f"hm_{measure}_{agg}_{days}d", family="home monitoring", source="home_monitoring",
                    date="reading_date", window_days=days, aggregation=agg, value=col(measure), default=None,
                    description=f"{ {'mean': 'Mean', 'std': 'Variability (SD) of', 'slope': 'Daily trend of'}[agg]} "
                                f"{label} over the {days} days before the index date"))
        feats.append(EventFeature(
            name=f"hm_reading_days_{days}d", family="home monitoring", source="home_monitoring", date="reading_date",
            window_days=days, aggregation="distinct_days",
            description=f"Days with a home reading in the {days} days before the index date"))
        feats.append(DerivedFeature(
            name=f"hm_missing_days_{days}d", family="home monitoring", depends_on=[f"hm_reading_days_{days}d"],
            expression=const(days) - col(f"hm_reading_days_{days}d"),
            description=f"Days without a home reading in the {days} days before the index date"))
    for measure, label in MONITORING_MEASURES.items():
        feats.append(EventFeature(
            name=f"hm_{measure}_last", family="home monitoring", source="home_monitoring", date="reading_date",
            window_days=14, aggregation="last", value=col(measure), default=None,
            description=f"Latest {label} in the 14 days before the index date"))
    return feats
