"""The audit's operating policy, from order statistics of the scores (so any engine that can sort finds the same
values): the threshold, the curve policies' thresholds and the bootstrap's score bins; and which metrics a
score can be judged on (calibration needs probabilities)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluation.fairness import engine
from evaluation.fairness.config import AuditConfig

CALIBRATION_METRICS = ("predicted_to_observed", "calibration_slope", "mean_predicted")


@dataclass
class Policy:
    """The operating threshold, the thresholds of the curve policies and the score bins of the bootstrap.
    All are order statistics of the scores, so any engine that can sort finds the same values."""

    threshold: float
    curve_thresholds: dict[float, float]
    binning: engine.Binning


def _kth_highest(n: int, share: float) -> int:
    """Ascending position of the score of the k-th highest person, k = ceil(share x n)."""
    return n - max(1, int(np.ceil(share * n)))


def order_positions(n: int, cfg: AuditConfig) -> np.ndarray:
    """Every ascending position (0-based) whose score the policy needs: the bin edges (numpy's 'lower'
    quantiles), the top-share threshold and the curve thresholds."""
    edges = np.floor(np.linspace(0, 1, cfg.score_bins + 1)[1:-1] * (n - 1)).astype(np.int64)
    shares = [*([cfg.top_share] if cfg.threshold is None else []), *cfg.curve_shares]
    return np.unique(np.concatenate([edges, [_kth_highest(n, s) for s in shares]]))


def policy(n: int, cfg: AuditConfig, values: dict[int, float]) -> Policy:
    """The policy from the order statistics `values` (ascending position -> score) of `order_positions`."""
    edges = np.array(
        [values[i] for i in np.floor(np.linspace(0, 1, cfg.score_bins + 1)[1:-1] * (n - 1)).astype(np.int64)]
    )
    threshold = float(cfg.threshold) if cfg.threshold is not None else values[_kth_highest(n, cfg.top_share)]
    curves = {s: values[_kth_highest(n, s)] for s in cfg.curve_shares}
    cuts = np.asarray([threshold, *curves.values()], dtype=float)
    return Policy(threshold, curves, engine.Binning(np.unique(np.concatenate([edges, cuts]))))


def judged_config(cfg: AuditConfig, probabilities: bool) -> AuditConfig:
    """Scores that are not probabilities cannot be judged on calibration."""
    if probabilities:
        return cfg
    return cfg.model_copy(update={"flag_metrics": [m for m in cfg.flag_metrics if m not in CALIBRATION_METRICS]})
