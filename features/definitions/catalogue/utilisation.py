"""Use of services before the index date: hospital admissions and bed days, A&E, outpatients, medicines,
community and mental health contacts, social care and housing; and admissions for ambulatory care sensitive
conditions (ACSC)."""

from __future__ import annotations

from features.definitions.expressions import col, substr
from features.definitions.model import EventFeature, Feature, Filter
from features.sources.codes import ACSC_ICD10, EMERGENCY_ADMISSION_METHODS

EMERGENCY = Filter(column="admission_method", op="in", values=list(EMERGENCY_ADMISSION_METHODS))


def utilisation() -> list[Feature]:
    feats: list[Feature] = []
    for days, label in ((90, "3m"), (365, "12m")):
        feats += [
            EventFeature(
                name=f"emergency_admissions_{label}",
                family="hospital use",
                source="apc_spells",
                date="admission_date",
                where=[EMERGENCY],
                window_days=days,
                description=f"Emergency admissions (methods 21-2D) in the {days} days before the index date",
            ),
            EventFeature(
                name=f"emergency_bed_days_{label}",
                family="hospital use",
                source="apc_spells",
                date="admission_date",
                end="discharge_date",
                where=[EMERGENCY],
                window_days=days,
                aggregation="bed_days",
                description=f"Days in hospital after emergency admission within the {days} days before the index date",
            ),
        ]
    feats += [
        EventFeature(
            name="elective_admissions_12m",
            family="hospital use",
            source="apc_spells",
            date="admission_date",
            where=[Filter(column="admission_method", values=["11", "12", "13"])],
            window_days=365,
            description="Elective admissions (methods 11-13) in the year before the index date",
        ),
        EventFeature(
            name="days_since_emergency_admission",
            family="hospital use",
            source="apc_spells",
            date="admission_date",
            where=[EMERGENCY],
            aggregation="days_since_last",
            default=3650,
            description="Days since the latest emergency admission (3650 when none)",
        ),
        EventFeature(
            name="critical_care_days_12m",
            family="hospital use",
            source="apc_spells",
            date="discharge_date",  # a spell's critical care days are known once it ends, not when it begins
            window_days=365,
            aggregation="sum",
            value="critical_care_days",
            description="Critical care days in spells discharged in the year before the index date (a spell "
            "still in progress on the index date has not reported them)",
        ),
        EventFeature(
            name="ae_attendances_12m",
            family="A&E",
            source="ae_attendances",
            date="arrival_time",
            window_days=365,
            description="A&E attendances in the year before the index date",
        ),
        EventFeature(
            name="ae_high_acuity_12m",
            family="A&E",
            source="ae_attendances",
            date="arrival_time",
            window_days=365,
            where=[Filter(column="acuity", values=[1, 2])],
            description="A&E attendances triaged immediate or very urgent (acuity 1-2) in the year before",
        ),
        EventFeature(
            name="outpatient_attendances_12m",
            family="outpatients",
            source="op_appointments",
            date="appointment_date",
            window_days=365,
            where=[Filter(column="attendance_status", values=["ATTENDED"])],
            description="Outpatient appointments attended in the year before the index date",
        ),
        EventFeature(
            name="outpatient_dna_12m",
            family="outpatients",
            source="op_appointments",
            date="appointment_date",
            window_days=365,
            where=[Filter(column="attendance_status", values=["DNA"])],
            description="Outpatient appointments missed (did not attend) in the year before the index date",
        ),
        EventFeature(
            name="medicine_classes_12m",
            family="medicines",
            source="prescriptions",
            date="issue_date",
            window_days=365,
            aggregation="count_distinct",
            value=substr(col("bnf_code"), 1, 4),
            description="Distinct medicine classes (BNF sections) issued in the year before the index date",
        ),
        EventFeature(
            name="community_contacts_12m",
            family="community and mental health",
            source="community_contacts",
            date="contact_date",
            window_days=365,
            description="Community health contacts in the year before the index date",
        ),
        EventFeature(
            name="palliative_care_12m",
            family="community and mental health",
            source="community_contacts",
            date="contact_date",
            window_days=365,
            aggregation="exists",
            where=[Filter(column="service", values=["palliative_care"])],
            description="Any palliative care contact in the year before the index date",
        ),
        EventFeature(
            name="mh_contacts_12m",
            family="community and mental health",
            source="mh_contacts",
            date="contact_date",
            window_days=365,
            description="Mental health service contacts in the year before the index date",
        ),
        EventFeature(
            name="social_care_package",
            family="wider determinants",
            source="social_care",
            date="start_date",
            end="end_date",
            aggregation="active_at_index",
            description="An adult social care package active on the index date",
        ),
        EventFeature(
            name="housing_flag",
            family="wider determinants",
            source="housing",
            date="recorded_date",
            aggregation="exists",
            description="Any housing flag ever recorded (temporary accommodation, overcrowding, homeless, poor condition)",
        ),
    ]
    return feats


def ambulatory_care() -> list[Feature]:
    """Emergency admissions for ambulatory care sensitive conditions (NHS Outcomes Framework 2.3i and 3a)."""
    acsc = [EMERGENCY, Filter(column="primary_diagnosis", op="prefix", values=list(ACSC_ICD10))]
    return [
        EventFeature(
            name="acsc_admissions_12m",
            family="hospital use",
            source="apc_spells",
            date="admission_date",
            window_days=365,
            where=acsc,
            description="Emergency admissions for an ambulatory care sensitive condition (NHS Outcomes "
            "Framework 2.3i chronic, 3a acute) in the year before the index date",
        ),
        EventFeature(
            name="days_since_acsc_admission",
            family="hospital use",
            source="apc_spells",
            date="admission_date",
            where=acsc,
            aggregation="days_since_last",
            default=3650,
            description="Days since the latest emergency admission for an ambulatory care sensitive "
            "condition (3650 when none)",
        ),
    ]
