"""Home readings (oxygen saturation, FEV1, peak flow, heart rate, symptoms, steps): mean, variability and
trend over 7 and 14 days, days with and without a reading, the latest value."""

from __future__ import annotations

from features.definitions.expressions import col, const
from features.definitions.model import DerivedFeature, EventFeature, Feature

MONITORING_MEASURES = {
    "spo2": "oxygen saturation (%)",
    "fev1_pct_predicted": "FEV1 (% predicted)",
    "peak_flow_pct_predicted": "peak flow (% predicted)",
    "heart_rate": "heart rate (beats/min)",
    "symptom_score": "symptom score (0-10)",
    "steps": "daily steps",
}


def monitoring() -> list[Feature]:
    feats: list[Feature] = []
    for days in (7, 14):
        for measure, label in MONITORING_MEASURES.items():
            for agg in ("mean", "std", "slope"):
                feats.append(
                    EventFeature(
                        name=f"hm_{measure}_{agg}_{days}d",
                        family="home monitoring",
                        source="home_monitoring",
                        date="reading_date",
                        window_days=days,
                        aggregation=agg,
                        value=col(measure),
                        default=None,
                        description=f"{ {'mean': 'Mean', 'std': 'Variability (SD) of', 'slope': 'Daily trend of'}[agg] } "
                        f"{label} over the {days} days before the index date",
                    )
                )
        feats.append(
            EventFeature(
                name=f"hm_reading_days_{days}d",
                family="home monitoring",
                source="home_monitoring",
                date="reading_date",
                window_days=days,
                aggregation="distinct_days",
                description=f"Days with a home reading in the {days} days before the index date",
            )
        )
        feats.append(
            DerivedFeature(
                name=f"hm_missing_days_{days}d",
                family="home monitoring",
                depends_on=[f"hm_reading_days_{days}d"],
                expression=const(days) - col(f"hm_reading_days_{days}d"),
                description=f"Days without a home reading in the {days} days before the index date",
            )
        )
    for measure, label in MONITORING_MEASURES.items():
        feats.append(
            EventFeature(
                name=f"hm_{measure}_last",
                family="home monitoring",
                source="home_monitoring",
                date="reading_date",
                window_days=14,
                aggregation="last",
                value=col(measure),
                default=None,
                description=f"Latest {label} in the 14 days before the index date",
            )
        )
    return feats
