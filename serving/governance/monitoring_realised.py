"""Monitoring once outcomes have matured: realised discrimination and calibration (overall and by risk band),
fairness audited again and compared with the flags at sign-off, and the programme's view (observed/expected among
the listed, the held-out and the never listed), each leaving its tolerance raising an alert."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from evaluation.fairness.audit import run_audit
from evaluation.fairness.groups import STANDARD_GROUPINGS, audit_frame, standard_labels
from evaluation.metrics import calibration_slope_intercept
from evaluation.programme import listing
from models import specs
from phm.core.settings import Settings
from serving.governance.model_audit import latest_report
from serving.governance.monitoring_config import Alert, MonitorConfig
from training.safe_learning import weights as safe_weights
from training.safe_learning import window_end


def programme_view(
    settings: Settings, name: str, known: pd.DataFrame, y: np.ndarray, p: np.ndarray
) -> tuple[dict, np.ndarray | None]:
    """Observed/expected among the people listed and shown, the held-out and the never listed before the end of
    their outcome window (`evaluation.programme.listing`), and the weights that judge the model without the
    people the programme may have treated (`training.safe_learning`, holdout mode; None without a holdout: the
    listed cannot then be stood for, and the figures say so)."""
    record = listing.read(settings, name)
    if record.empty:
        return {}, None
    spec = specs.get(name)
    first = known.person_id.map(record.set_index("person_id").first_listed)
    listed = (first.notna() & (first < window_end(known, spec))).to_numpy()
    held = listed & known.person_id.map(record.set_index("person_id").held_out).eq(True).to_numpy()
    view = {}
    for group, mask in (("listed_and_shown", listed & ~held), ("held_out", held), ("never_listed", ~listed)):
        view[group] = {
            "people": int(mask.sum()),
            "observed": int(y[mask].sum()),
            "expected": float(p[mask].sum()),
            "observed_to_expected": float(y[mask].sum() / p[mask].sum()) if mask.any() else None,
        }
    weights = safe_weights(settings, spec, known, "holdout") if held.any() else None
    view["performance_judged_on"] = (
        "the never listed and the held-out (weighted for the listed)"
        if held.any()
        else "everyone, the listed included: with no holdout their outcomes may show the "
        "programme's success as the model over-predicting"
    )
    return view, weights


@dataclass
class Realised:
    """Realised performance once outcomes have matured, the programme's view, fairness flags and their alerts."""

    performance: dict[str, float | None] = field(default_factory=dict)
    by_band: list[dict] = field(default_factory=list)
    flags: list[dict] = field(default_factory=list)
    programme: dict = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)


def realised(
    settings: Settings,
    name: str,
    version: int,
    model,
    predictors: list[str],
    matured: pd.DataFrame,
    label: str,
    outcome_day: date,
    signoff: dict[str, float | None],
    cfg: MonitorConfig,
) -> Realised:
    """Realised performance, calibration (overall and by risk band) and fairness of the model on the people whose
    outcomes matured by `outcome_day`, compared with sign-off; the programme's listed people judged apart."""
    alerts: list[Alert] = []
    by_band: list[dict] = []
    flags: list[dict] = []
    known = matured[matured[label].notna()]
    y = known[label].to_numpy(dtype=int)
    p = model.predict_proba(known[predictors].astype("float64"))[:, 1]
    programme, w = programme_view(settings, name, known, y, p)
    if w is not None:  # judged without the people the programme may have treated, the holdout standing for them
        keep = w > 0
        known, y, p, w = known[keep], y[keep], p[keep], w[keep]
    slope, intercept = calibration_slope_intercept(y, p, w)
    performance = {
        "auroc": float(roc_auc_score(y, p, sample_weight=w)) if 0 < y.sum() < y.size else None,
        "calibration_slope": slope,
        "calibration_intercept": intercept,
        "observed_to_expected": float(np.average(y, weights=w) / np.average(p, weights=w)),
        "people": float(y.size),
    }
    order = np.argsort(-p, kind="stable")
    for band, lo, hi in (
        ("very high", 0, 0.005),
        ("high", 0.005, 0.02),
        ("raised", 0.02, 0.05),
        ("routine", 0.05, 1),
    ):
        idx = order[int(lo * y.size) : int(np.ceil(hi * y.size))]
        by_band.append(
            {"band": band, "people": int(idx.size), "observed": int(y[idx].sum()), "expected": float(p[idx].sum())}
        )
    if (
        performance["auroc"] is not None
        and signoff["auroc"] is not None
        and performance["auroc"] < signoff["auroc"] - cfg.auroc_drop
    ):
        alerts.append(
            Alert(
                kind="performance",
                metric="auroc",
                subject="overall",
                value=performance["auroc"],
                threshold=f">= {signoff['auroc'] - cfg.auroc_drop:.3f}",
                message=f"realised AUROC {performance['auroc']:.3f} vs {signoff['auroc']:.3f} at sign-off",
            )
        )
    lo, hi = cfg.observed_to_expected
    oe = performance["observed_to_expected"]
    if not lo <= oe <= hi:
        alerts.append(
            Alert(
                kind="calibration",
                metric="observed_to_expected",
                subject="overall",
                value=oe,
                threshold=f"{lo}-{hi}",
                message=f"{oe:.2f} times the predicted number of events happened",
            )
        )
    lo, hi = cfg.calibration_slope
    if not lo <= slope <= hi:
        alerts.append(
            Alert(
                kind="calibration",
                metric="calibration_slope",
                subject="overall",
                value=slope,
                threshold=f"{lo}-{hi}",
                message=f"realised calibration slope {slope:.2f}",
            )
        )
    groupings = [g for g in STANDARD_GROUPINGS if g.name in cfg.fairness_groupings]
    audit = run_audit(
        standard_labels(audit_frame(known, label, p)),
        groupings,
        cfg.fairness,
        {"kind": "monitoring", "model": name, "version": version, "index_date": str(outcome_day)},
    )
    at_signoff = latest_report(name, version) or {}
    before = {(f["grouping"], f["group"], f["metric"]) for f in at_signoff.get("flags", [])}
    for f in audit.flags:
        if f.grouping == "overall":  # calibration for everyone: the calibration alerts above judge it
            continue
        flags.append(f.model_dump())
        if (f.grouping, f.group, f.metric) not in before:
            alerts.append(
                Alert(
                    kind="fairness",
                    metric=f.metric,
                    subject=f"{f.grouping}: {f.group}",
                    value=f.ratio,
                    threshold=f"ratio {cfg.fairness.tolerance[0]}-{cfg.fairness.tolerance[1]}",
                    message=f"{f.group} ({f.grouping}): {f.metric} ratio {f.ratio:.2f} against "
                    f"{f.reference_group}, not flagged at sign-off",
                )
            )
    return Realised(performance, by_band, flags, programme, alerts)
