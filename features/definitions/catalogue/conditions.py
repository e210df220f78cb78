"""What the person lives with: each long-term condition from GP codes or hospital diagnoses, their count,
and frailty deficits."""

from __future__ import annotations

from features.definitions.expressions import add, col, greatest
from features.definitions.model import DerivedFeature, EventFeature, Feature, Filter
from features.sources.codes import CONDITIONS, FRAILTY_DEFICITS


def conditions() -> list[Feature]:
    feats: list[Feature] = []
    for c in CONDITIONS:
        feats.append(
            EventFeature(
                name=f"ltc_{c.key}_gp",
                family="long-term conditions",
                source="gp_events",
                date="event_date",
                where=[Filter(column="code", values=[c.snomed])],
                aggregation="exists",
                description=f"{c.label} coded in the GP record (SNOMED {c.snomed})",
            )
        )
        feats.append(
            EventFeature(
                name=f"ltc_{c.key}_hosp",
                family="long-term conditions",
                source="apc_spells",
                date="admission_date",
                where=[Filter(column="primary_diagnosis", op="prefix", values=list(c.icd10))],
                aggregation="exists",
                description=f"{c.label} as the primary diagnosis of a hospital spell (ICD-10 {', '.join(c.icd10)})",
            )
        )
        feats.append(
            DerivedFeature(
                name=f"ltc_{c.key}",
                family="long-term conditions",
                depends_on=[f"ltc_{c.key}_gp", f"ltc_{c.key}_hosp"],
                description=f"{c.label} recorded in GP or hospital data before the index date",
                expression=greatest(col(f"ltc_{c.key}_gp"), col(f"ltc_{c.key}_hosp")),
            )
        )
    keys = [f"ltc_{c.key}" for c in CONDITIONS]
    feats.append(
        DerivedFeature(
            name="ltc_count",
            family="long-term conditions",
            depends_on=keys,
            description="Number of the long-term conditions above",
            expression=add(*map(col, keys)),
        )
    )
    feats.append(
        EventFeature(
            name="frailty_deficits",
            family="frailty",
            source="gp_events",
            date="event_date",
            where=[Filter(column="code", values=list(FRAILTY_DEFICITS))],
            aggregation="count_distinct",
            value="code",
            description="Distinct frailty deficits ever coded (eFI-style: falls, incontinence, mobility, ...)",
        )
    )
    return feats
