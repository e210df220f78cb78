"""COPD or asthma exacerbation (a flare-up) within 14 days, from home-monitoring readings: a warning shown beside
each monitored patient on the worklist."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd

from features.cohorts import RESPIRATORY_ICD10, CohortConfig, LabelConfig
from features.definitions.catalogue.conditions import conditions
from features.definitions.catalogue.demography import demographics
from features.definitions.catalogue.home_monitoring import monitoring
from features.definitions.catalogue.respiratory import exacerbations
from features.definitions.model import FeatureSet
from features.sources.codes import RESCUE_PACK
from models.specs.base import BaselineRule, DailyUse, ModelSpec, TrainingDefaults, Truth
from phm.core.settings import Settings

SYMPTOM_RULE = 5.0  # symptom score (0-10) averaged over 7 days at or above which the rule flags
ALERT_SHARE = 0.10  # the warning policy of the validation: alert on the top 10% of person-days
BASIC = {
    "age",
    "age_band",
    "sex",
    "female",
    "imd_decile",
    "core20",
    "ethnic_category",
    "practice_code",
    "registered_days",
}


def _weekly(first: date, last: date, step_days: int = 7) -> tuple[date, ...]:
    return tuple(first + timedelta(days=k) for k in range(0, (last - first).days + 1, step_days))


def _symptom_rule(frame: pd.DataFrame) -> np.ndarray:
    return (frame.hm_symptom_score_mean_7d.fillna(0) >= SYMPTOM_RULE).to_numpy(dtype=float)


def exacerbation_dates(settings: Settings, persons: np.ndarray) -> pd.DataFrame:
    """Rescue courses and COPD/asthma emergency admissions (the outcome events) of these people."""
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    con.register("who", pd.DataFrame({"person_id": persons}))
    try:
        return con.execute(
            f"""SELECT DISTINCT person_id, issue_date AS event_date FROM prescriptions
            WHERE bnf_code = ? AND person_id IN (SELECT person_id FROM who)
            UNION SELECT DISTINCT person_id, admission_date FROM apc_spells WHERE person_id IN (SELECT person_id FROM who)
            AND admission_method LIKE '2%' AND substr(primary_diagnosis, 1, 3) IN ({", ".join("?" * len(RESPIRATORY_ICD10))})
            """,
            [RESCUE_PACK[0], *RESPIRATORY_ICD10],
        ).df()
    finally:
        con.close()


def lead_times(validation: pd.DataFrame, risk: np.ndarray, events: pd.DataFrame, threshold: float) -> dict:
    """For each exacerbation in the validation period: was a warning (risk >= threshold) given in the
    14 days before it, and how many days ahead was the first one?"""
    scored = pd.DataFrame(
        {
            "person_id": validation.person_id.to_numpy(),
            "day": pd.to_datetime(validation.index_date).to_numpy(),
            "risk": risk,
        }
    )
    first, last = scored.day.min(), scored.day.max()
    ev = events.assign(event_date=pd.to_datetime(events.event_date))
    ev = ev[(ev.event_date > first + timedelta(days=14)) & (ev.event_date <= last)]
    alerts = scored[scored.risk >= threshold]
    joined = ev.merge(alerts, on="person_id")
    lead = (joined.event_date - joined.day).dt.days
    joined = joined[(lead >= 1) & (lead <= 14)].assign(lead=lead)
    best = joined.groupby(["person_id", "event_date"]).lead.max()
    n = len(ev.drop_duplicates(["person_id", "event_date"]))
    return {
        "events": int(n),
        "warned": int(best.size),
        "share_warned": float(best.size / n) if n else float("nan"),
        "median_lead_days": float(best.median()) if best.size else float("nan"),
    }


def warnings(
    settings: Settings, validation: pd.DataFrame, p_model: np.ndarray, p_rule: np.ndarray
) -> tuple[dict, dict]:
    """How far ahead the model warns of exacerbations, against the symptom rule (model card section, metrics)."""
    events = exacerbation_dates(settings, validation.person_id.unique())
    threshold = float(np.quantile(p_model, 1 - ALERT_SHARE))
    warn = lead_times(validation, p_model, events, threshold)
    warn_rule = lead_times(validation, p_rule, events, 0.5)
    card = {
        "warnings": {
            "operating_threshold": threshold,
            "policy": f"alert when risk is in the top {ALERT_SHARE:.0%} of person-days",
            "model": warn,
            "symptom_rule": warn_rule,
        }
    }
    metrics = {
        "warn_median_lead_days": warn["median_lead_days"],
        "warn_share": warn["share_warned"],
        "rule_warn_share": warn_rule["share_warned"],
    }
    return card, metrics


SPEC = ModelSpec(
    name="flare_up",
    title="COPD or asthma flare-up within 14 days",
    outcome="a COPD or asthma exacerbation within 14 days",
    features=FeatureSet(
        name="flare_up",
        description="Predictors of a COPD or asthma exacerbation in the 14 days after the index date",
        features=[f for f in demographics() if f.name in BASIC]
        + [
            f
            for f in conditions()
            if f.name.startswith(("ltc_copd", "ltc_asthma", "ltc_heart_failure")) or f.name == "frailty_deficits"
        ]
        + exacerbations()
        + monitoring(),
        carried=["ethnic_category", "practice_code", "sex", "age_band"],
    ),
    cohort=CohortConfig(conditions=["copd", "asthma"], monitored_days=14),
    label=LabelConfig(outcome="exacerbation", horizon_months=None, horizon_days=14),
    horizon_days=14,
    baseline=BaselineRule(f"symptom score >= {SYMPTOM_RULE:g} (7-day mean)", _symptom_rule),
    truth=Truth("truth_exacerbation_14d", date_column="date", day_offset=1),
    intended_use=(
        "Warn care teams, from home-monitoring readings, that a person with COPD or asthma is at raised risk of "
        "an exacerbation in the next 14 days, so they can be contacted early. Not an alarm for emergencies: "
        "people who feel acutely unwell must still seek urgent care."
    ),
    training=TrainingDefaults(
        train_dates=_weekly(date(2023, 7, 3), date(2024, 6, 10)),
        validation_dates=_weekly(date(2024, 7, 1), date(2025, 3, 17), step_days=1),
        num_leaves=(7, 15),
        min_child_samples=(50, 100),
        step="week",
    ),
    daily=DailyUse(
        kind="column",
        column="flare_risk",
        title="chance of a COPD or asthma flare-up in the next 14 days",
        rank_title="most likely to flare up in 14 days first",
        top_share=ALERT_SHARE,
    ),
    validation_extras=warnings,
)
