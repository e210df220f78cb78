"""Forecast accuracy: MASE, MAPE, interval coverage and pinball loss."""

from __future__ import annotations

import numpy as np


def seasonal_naive_scale(history: np.ndarray, season: int = 7) -> float:
    """In-sample mean absolute error of the seasonal naive forecast: the MASE denominator."""
    history = np.asarray(history, dtype=float)
    if history.size <= season:
        return float("nan")
    return float(np.mean(np.abs(history[season:] - history[:-season])))


def mase(actual: np.ndarray, forecast: np.ndarray, scale: float) -> float:
    return float(np.mean(np.abs(actual - forecast)) / scale) if scale > 0 else float("nan")


def mape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Mean absolute percentage error over days with a non-zero actual (NaN if there are none)."""
    ok = actual != 0
    return float(np.mean(np.abs(actual[ok] - forecast[ok]) / np.abs(actual[ok]))) if ok.any() else float("nan")


def coverage(actual: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    return float(np.mean((actual >= low) & (actual <= high)))


def pinball(actual: np.ndarray, quantiles: dict[float, np.ndarray]) -> float:
    """Mean pinball (quantile) loss over the given quantiles."""
    losses = []
    for q, pred in quantiles.items():
        diff = actual - pred
        losses.append(np.mean(np.maximum(q * diff, (q - 1) * diff)))
    return float(np.mean(losses))
