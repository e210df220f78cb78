"""Monitoring input drift: the population stability index (PSI) of each predictor and of the score against the
reference population, overall and within broad ethnic groups, changes in missingness and in the group mix."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import chi2

from features.sources.codes import BROAD_ETHNIC_GROUP
from serving.governance.monitoring_config import Alert, MonitorConfig


def _shares(reference: np.ndarray, current: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """The counts of `reference` and `current` in the reference's bins: its quantiles, with a bin of its own for
    each value holding a `1/bins` share of it or more (the 0 of a flag or of a rarely non-zero count: its quantiles
    coincide, and a bin `[0, next edge)` would hide people moving off it); missing values last."""
    ref, cur = np.asarray(reference, float), np.asarray(current, float)
    seen = ref[np.isfinite(ref)]
    edges = np.array([])
    if seen.size:
        values, counts = np.unique(seen, return_counts=True)
        heavy = values[counts >= seen.size / bins]
        quantiles = np.quantile(seen, np.linspace(0, 1, bins + 1)[1:-1])
        edges = np.unique(np.concatenate([quantiles, heavy, np.nextafter(heavy, np.inf)]))

    def counts(x: np.ndarray) -> np.ndarray:
        missing = np.isnan(x)
        found = np.bincount(np.searchsorted(edges, x[~missing], side="right"), minlength=edges.size + 1)
        return np.append(found, missing.sum())

    return counts(ref), counts(cur)


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index of `current` against `reference` (bins: `_shares`)."""
    a, b = _shares(reference, current, bins)
    p, q = np.clip(a / max(a.sum(), 1), 1e-4, None), np.clip(b / max(b.sum(), 1), 1e-4, None)
    return float(np.sum((q - p) * np.log(q / p)))


def psi_noise(reference: np.ndarray, current: np.ndarray, level: float, bins: int = 10) -> float:
    """The PSI that two samples of these sizes from one distribution exceed with probability `level`: PSI times
    `1/(1/n_ref + 1/n_cur)` is about chi-squared with (bins used - 1) degrees of freedom. Small for a whole
    population; for a group of a few hundred people above the alert thresholds, which sampling alone would cross."""
    a, b = _shares(reference, current, bins)
    if not a.sum() or not b.sum():
        return 0.0
    used = int(((a + b) > 0).sum())
    return float(chi2.ppf(1 - level, max(used - 1, 1)) * (1 / a.sum() + 1 / b.sum()))


def _broad(frame: pd.DataFrame) -> pd.Series:
    return frame["ethnic_category"].map(BROAD_ETHNIC_GROUP).fillna("Unknown")


@dataclass
class Drift:
    """Input drift: each predictor's and the score's PSI and missingness change, by broad ethnic group, the group mix,
    and the alerts they raise."""

    drift: list[dict]
    group_drift: list[dict]
    mix: list[dict]
    alerts: list[Alert]


def input_drift(
    model, predictors: list[str], reference: pd.DataFrame, current: pd.DataFrame, elapsed: int, cfg: MonitorConfig
) -> Drift:
    """Drift of `current` against `reference` (`elapsed` days earlier, aged by the clock features first) in the
    predictors, the score (overall and by broad ethnic group) and the group mix."""
    alerts: list[Alert] = []
    reference = reference.assign(
        **{
            c: reference[c] + rate * elapsed
            for c, rate in cfg.clock_features.items()
            if c in reference and c in predictors
        }
    )
    drift = []
    for col in predictors:
        ref, cur = reference[col].to_numpy(float), current[col].to_numpy(float)
        value, bar = psi(ref, cur), max(cfg.psi_alert, psi_noise(ref, cur, cfg.psi_noise_level))
        miss = float(np.isnan(cur).mean() - np.isnan(ref).mean())
        drift.append({"feature": col, "psi": value, "missing_change": miss})
        if value > bar:
            alerts.append(
                Alert(
                    kind="drift",
                    metric="psi",
                    subject=col,
                    value=value,
                    threshold=f"<= {bar:.3g}",
                    message=f"{col} has shifted (PSI {value:.2f})",
                )
            )
        if abs(miss) > cfg.missing_change:
            alerts.append(
                Alert(
                    kind="drift",
                    metric="missing_change",
                    subject=col,
                    value=miss,
                    threshold=f"|change| <= {cfg.missing_change}",
                    message=f"{col} is missing for {miss:+.0%} more people",
                )
            )
    ref_score = model.predict_proba(reference[predictors].astype("float64"))[:, 1]
    cur_score = model.predict_proba(current[predictors].astype("float64"))[:, 1]
    score_psi = psi(ref_score, cur_score)
    bar = max(cfg.psi_alert, psi_noise(ref_score, cur_score, cfg.psi_noise_level))
    drift.append({"feature": "score", "psi": score_psi, "missing_change": 0.0})
    if score_psi > bar:
        alerts.append(
            Alert(
                kind="drift",
                metric="psi",
                subject="score",
                value=score_psi,
                threshold=f"<= {bar:.3g}",
                message=f"the distribution of predicted risk has shifted (PSI {score_psi:.2f})",
            )
        )
    group_drift = []
    ref_g, cur_g = _broad(reference), _broad(current)
    for group in sorted(set(ref_g) | set(cur_g)):
        r, c = ref_score[(ref_g == group).to_numpy()], cur_score[(cur_g == group).to_numpy()]
        if min(r.size, c.size) < cfg.min_group_people:
            continue
        value = psi(r, c)
        in_ref, in_cur = (ref_g == group).to_numpy(), (cur_g == group).to_numpy()
        pairs = {
            col: (reference.loc[in_ref, col].to_numpy(float), current.loc[in_cur, col].to_numpy(float))
            for col in predictors
        }
        moved = sorted(((psi(*pair), col) for col, pair in pairs.items()), reverse=True)[:5]
        group_drift.append(
            {
                "group": group,
                "psi": value,
                "people": int(c.size),
                "mean_risk_before": float(r.mean()),
                "mean_risk_now": float(c.mean()),
                "features": [{"feature": col, "psi": v} for v, col in moved],
            }
        )
        for v, col in moved:
            bar = max(cfg.group_psi_alert, psi_noise(*pairs[col], cfg.psi_noise_level))
            if v > bar:
                alerts.append(
                    Alert(
                        kind="drift",
                        metric="psi_by_group",
                        subject=f"Ethnicity (broad group): {group}: {col}",
                        value=v,
                        threshold=f"<= {bar:.3g}",
                        message=f"{col} has shifted among {group} people (PSI {v:.2f})",
                    )
                )
        bar = max(cfg.group_psi_alert, psi_noise(r, c, cfg.psi_noise_level))
        if value > bar:
            alerts.append(
                Alert(
                    kind="drift",
                    metric="score_psi_by_group",
                    subject=f"Ethnicity (broad group): {group}",
                    value=value,
                    threshold=f"<= {bar:.3g}",
                    message=f"predicted risk of {group} people has shifted (PSI {value:.2f}; mean "
                    f"{r.mean():.3f} -> {c.mean():.3f})",
                )
            )
    mix = []
    for group in sorted(set(ref_g) | set(cur_g)):
        change = float((cur_g == group).mean() - (ref_g == group).mean())
        mix.append({"group": group, "share_before": float((ref_g == group).mean()), "change": change})
        if abs(change) > cfg.mix_change:
            alerts.append(
                Alert(
                    kind="drift",
                    metric="group_mix",
                    subject=f"Ethnicity (broad group): {group}",
                    value=change,
                    threshold=f"|change| <= {cfg.mix_change}",
                    message=f"{group} share of the population moved {change:+.1%}",
                )
            )
    return Drift(drift, group_drift, mix, alerts)
