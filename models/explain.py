"""Why a person is flagged: top contributing features, in words a care coordinator understands.

Contributions come from LightGBM itself (`pred_contrib`, exact TreeSHAP-style values in
log-odds). They cost milliseconds per person, so compute them only for people who are shown.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from features.sources.codes import CONDITIONS
from models.risk import GradientBoostedRisk

_CONDITION_LABEL = {c.key: c.label for c in CONDITIONS}
_MEASURE = {
    "spo2": "oxygen saturation",
    "fev1_pct_predicted": "FEV1",
    "peak_flow_pct_predicted": "peak flow",
    "heart_rate": "heart rate",
    "symptom_score": "symptom score",
    "steps": "daily steps",
}
TEMPLATES = {
    "age": "aged {v:.0f}",
    "emergency_admissions_12m": "{v:.0f} emergency admission(s) in the last year",
    "emergency_admissions_3m": "{v:.0f} emergency admission(s) in the last 3 months",
    "emergency_bed_days_12m": "{v:.0f} day(s) in hospital after emergencies in the last year",
    "emergency_bed_days_3m": "{v:.0f} day(s) in hospital after emergencies in the last 3 months",
    "days_since_emergency_admission": "last emergency admission {v:.0f} days ago",
    "acsc_admissions_12m": "{v:.0f} emergency admission(s) for a condition usually managed outside hospital in the "
    "last year",
    "days_since_acsc_admission": "last emergency admission for a condition usually managed outside hospital "
    "{v:.0f} days ago",
    "elective_admissions_12m": "{v:.0f} planned admission(s) in the last year",
    "critical_care_days_12m": "{v:.0f} day(s) in critical care in the last year",
    "ae_attendances_12m": "{v:.0f} A&E visit(s) in the last year",
    "ae_high_acuity_12m": "{v:.0f} very urgent A&E visit(s) in the last year",
    "outpatient_attendances_12m": "{v:.0f} outpatient appointment(s) in the last year",
    "outpatient_dna_12m": "missed {v:.0f} hospital appointment(s) in the last year",
    "medicine_classes_12m": "{v:.0f} different kinds of medicine in the last year",
    "community_contacts_12m": "{v:.0f} community nursing or therapy contact(s) in the last year",
    "mh_contacts_12m": "{v:.0f} mental health contact(s) in the last year",
    "palliative_care_12m": "receiving palliative care",
    "social_care_package": "has a social care package",
    "housing_flag": "housing problem recorded",
    "ltc_count": "{v:.0f} long-term condition(s)",
    "frailty_deficits": "{v:.0f} frailty indicator(s) recorded (falls, mobility, ...)",
    "rescue_courses_12m": "{v:.0f} steroid rescue course(s) for breathing in the last year",
    "respiratory_admissions_12m": "{v:.0f} emergency admission(s) for COPD or asthma in the last year",
    "days_since_exacerbation": "last breathing flare-up {v:.0f} days ago",
    "imd_decile": "lives in an area of deprivation decile {v:.0f} (1 = most deprived)",
    "core20": "lives in one of England's most deprived fifth of areas",
    "registered_days": "registered with the practice for {v:.0f} days",
    "female": "female",
}


def phrase(name: str, value: float) -> str:
    """Plain words for one feature value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        if name.startswith("hm_"):
            return "no recent home readings"
        return f"{name.replace('_', ' ')} not recorded"
    if name in TEMPLATES:
        return TEMPLATES[name].format(v=value)
    if name.startswith("ltc_"):
        key = name.removeprefix("ltc_").removesuffix("_gp").removesuffix("_hosp")
        where = " (GP record)" if name.endswith("_gp") else " (hospital record)" if name.endswith("_hosp") else ""
        return f"has {_CONDITION_LABEL.get(key, key)}{where}" if value else f"no {_CONDITION_LABEL.get(key, key)}"
    if name.startswith("hm_"):
        parts = name.removeprefix("hm_").rsplit("_", 2)
        if name.startswith(("hm_missing_days", "hm_reading_days")):
            days = name.rsplit("_", 1)[1]
            what = "days without" if "missing" in name else "days with"
            return f"{value:.0f} {what} home readings in the last {days.removesuffix('d')} days"
        if name.endswith("_last"):
            return f"latest {_MEASURE.get(name[3:-5], name[3:-5])} {value:.1f}"
        measure, stat, window = parts
        label = _MEASURE.get(measure, measure)
        days = window.removesuffix("d")
        if stat == "slope":
            trend = "rising" if value > 0 else "falling"
            return f"{label} {trend} by {abs(value):.2f} a day over the last {days} days"
        if stat == "std":
            return f"{label} varying (SD {value:.1f}) over the last {days} days"
        return f"{label} averaging {value:.1f} over the last {days} days"
    return f"{name.replace('_', ' ')}: {value:g}"


def reasons(model: GradientBoostedRisk, X: pd.DataFrame, top: int = 3) -> list[list[dict]]:
    """For each row, the `top` features that raise the risk most: name, value, words, contribution."""
    return reasons_from_values(model, X[list(model.feature_names_in_)].to_numpy(dtype="float64"), top)


def reasons_from_values(model: GradientBoostedRisk, values: np.ndarray, top: int = 3) -> list[list[dict]]:
    """`reasons` for a float array whose columns are in `model.feature_names_in_` order."""
    names = list(model.feature_names_in_)
    contrib = model.contributions_array(values)[:, :-1]  # drop the bias column
    order = np.argsort(-contrib, axis=1, kind="stable")[:, :top]
    out: list[list[dict]] = []
    for i in range(values.shape[0]):
        row = []
        for j in order[i]:
            c = contrib[i, j]
            if c <= 0:
                break
            v = values[i, j]
            row.append(
                {
                    "feature": names[j],
                    "value": None if np.isnan(v) else float(v),
                    "words": phrase(names[j], float(v)),
                    "log_odds": round(float(c), 4),
                }
            )
        out.append(row)
    return out
