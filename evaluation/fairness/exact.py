"""Exact per-group point estimates: the threshold metrics with fairlearn's MetricFrame on the (group, outcome,
flagged) cross-table, counts, event rates, predicted-to-observed, AUROC and calibration slope."""

from __future__ import annotations

import fairlearn.metrics as fm
import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame

from evaluation.metrics import calibration_slope_intercept
from phm.core.stats import auroc


def threshold_counts(codes: np.ndarray, y: np.ndarray, flag: np.ndarray, groups: int) -> np.ndarray:
    """People by (group, outcome, flagged), flattened: index (group * 2 + outcome) * 2 + flagged."""
    return np.bincount((codes.astype(np.int64) * 2 + y) * 2 + flag, minlength=groups * 4)


def threshold_metrics(counts: np.ndarray, groups: int) -> pd.DataFrame:
    """Selection rate, TPR, FNR, FPR and PPV per group with fairlearn's MetricFrame, evaluated on the
    (group, outcome, flagged) cross-table with counts as sample weights: exact, and fast at any size."""
    cell = np.flatnonzero(counts)
    g, yy, ff = cell // 4, (cell // 2) % 2, cell % 2
    w = counts[cell].astype(float)

    def guard(fn):
        def metric(y_true, y_pred, sample_weight):
            with np.errstate(divide="ignore", invalid="ignore"):
                return float(fn(np.asarray(y_true), np.asarray(y_pred), np.asarray(sample_weight)))

        return metric

    def rate(num_mask, den_mask):
        return guard(
            lambda t, f, sw: (
                (sw * num_mask(t, f)).sum() / (sw * den_mask(t, f)).sum() if (sw * den_mask(t, f)).sum() else np.nan
            )
        )

    metrics = {
        "selection_rate": guard(lambda t, f, sw: fm.selection_rate(t, f, sample_weight=sw)),
        "tpr": rate(lambda t, f: (t == 1) & (f == 1), lambda t, f: t == 1),
        "fnr": rate(lambda t, f: (t == 1) & (f == 0), lambda t, f: t == 1),
        "fpr": rate(lambda t, f: (t == 0) & (f == 1), lambda t, f: t == 0),
        "ppv": rate(lambda t, f: (t == 1) & (f == 1), lambda t, f: f == 1),
    }
    frame = MetricFrame(
        metrics=metrics,
        y_true=yy,
        y_pred=ff,
        sensitive_features=pd.Series(g, name="group"),
        sample_params={k: {"sample_weight": w} for k in metrics},
    )
    return frame.by_group.reindex(range(groups)).astype(float)


def exact_estimates(
    codes: np.ndarray, y: np.ndarray, p: np.ndarray, threshold: float, groups: int, probabilities: bool
) -> pd.DataFrame:
    """Exact per-group point estimates from the person rows."""
    out = threshold_metrics(threshold_counts(codes, y, (p >= threshold).astype(np.int64), groups), groups)
    n = np.bincount(codes, minlength=groups).astype(float)
    events = np.bincount(codes, weights=y, minlength=groups)
    expected = np.bincount(codes, weights=p, minlength=groups) if probabilities else None
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(groups + 1))
    auc, slope = np.full(groups, np.nan), np.full(groups, np.nan)
    for i in range(groups):
        idx = order[bounds[i] : bounds[i + 1]]
        if idx.size:
            auc[i] = auroc(y[idx], p[idx])
            if probabilities:
                slope[i] = calibration_slope_intercept(y[idx], p[idx])[0]
    return exact_table(out, n, events, expected, auc, slope if probabilities else None)


def exact_table(
    out: pd.DataFrame,
    n: np.ndarray,
    events: np.ndarray,
    expected: np.ndarray | None,
    auc: np.ndarray,
    slope: np.ndarray | None,
) -> pd.DataFrame:
    """The exact point estimates per group, from threshold metrics, counts, sums of risk, AUROC and slope."""
    out["n"], out["events"] = n, events
    with np.errstate(divide="ignore", invalid="ignore"):
        out["event_rate"] = events / n
        if expected is not None:
            out["mean_predicted"] = expected / n
            out["predicted_to_observed"] = expected / events
    out["auroc"] = auc
    if slope is not None:
        out["calibration_slope"] = slope
    return out
