"""An optional post-processing mitigation shown beside the unmitigated results, never applied silently:
group-specific thresholds chosen so that every group's true positive rate matches the overall rate at
the operating policy (equal opportunity). Fitted on a random half of people, evaluated on the other."""

from __future__ import annotations

import numpy as np

from evaluation.fairness.config import AuditConfig
from evaluation.fairness.results import Mitigation, MitigationRow


def _rates(y: np.ndarray, flag: np.ndarray) -> dict[str, float | None]:
    def ratio(a: float, b: float) -> float | None:
        return float(a / b) if b else None

    pos, neg = y == 1, y == 0
    return {
        "selection_rate": ratio(flag.sum(), y.size),
        "tpr": ratio((flag & pos).sum(), pos.sum()),
        "fpr": ratio((flag & neg).sum(), neg.sum()),
        "ppv": ratio((flag & pos).sum(), flag.sum()),
    }


def group_thresholds(
    labels: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    threshold: float,
    cfg: AuditConfig,
    grouping: str,
    cluster: np.ndarray | None = None,
) -> Mitigation:
    rng = np.random.default_rng(cfg.seed + 101)
    if cluster is not None:
        ids, inverse = np.unique(cluster, return_inverse=True)
        fit = (rng.random(ids.size) < 0.5)[inverse]
    else:
        fit = rng.random(y.size) < 0.5
    held = ~fit
    target = float(np.mean(p[fit & (y == 1)] >= threshold))
    thresholds = np.full(y.size, threshold)
    rows = []
    for g in sorted(set(labels.tolist())):
        in_g = labels == g
        pos_fit = p[in_g & fit & (y == 1)]
        t_g = threshold
        if pos_fit.size >= cfg.min_group_events and in_g.sum() >= cfg.min_group_size:
            t_g = float(np.quantile(pos_fit, 1 - target, method="lower"))
        thresholds[in_g] = t_g
        e = in_g & held
        rows.append(
            MitigationRow(
                group=str(g),
                n=int(e.sum()),
                threshold_before=threshold,
                threshold_after=t_g,
                before=_rates(y[e], p[e] >= threshold),
                after=_rates(y[e], p[e] >= t_g),
            )
        )
    return Mitigation(
        method="group-specific thresholds (equal true positive rate)",
        grouping=grouping,
        target=f"true positive rate {target:.1%} in every group (the overall rate at the operating policy)",
        fitted_on=f"{int(fit.sum()):,} rows (random half of people)",
        evaluated_on=f"{int(held.sum()):,} rows (the other half)",
        rows=rows,
        overall_before=_rates(y[held], p[held] >= threshold),
        overall_after=_rates(y[held], p[held] >= thresholds[held]),
        notes=[
            "Shown for the safety officer's decision only: the deployed model and its worklists are unchanged.",
            f"Using {grouping.replace('_', ' ')} to set thresholds means the group is used at the point of "
            "decision; whether that is lawful and acceptable (Equality Act 2010, public sector equality duty) "
            "is a decision for the ICS, not for this tool.",
            "Groups too small to estimate a threshold keep the common threshold.",
        ],
    )
