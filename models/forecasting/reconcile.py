"""Coherent forecasts for a two-level hierarchy (sites and their total, the ICS): MinTrace reconciliation
with a diagonal error covariance (WLS by each series' back-test error variance at each lead), so the
reconciled site forecasts add up to the reconciled total exactly, day by day. The adjustment moves the
series whose forecasts were least accurate in the back-test most."""

from __future__ import annotations

import numpy as np


def mintrace_wls(
    total: np.ndarray, sites: np.ndarray, var_total: np.ndarray, var_sites: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Reconcile base forecasts. `total`: (h,), `sites`: (m, h), variances the same shapes (error variance
    of each series' forecast at each lead). Returns (total, sites) with total == sites.sum(axis=0) exactly
    and sites non-negative (a negative reconciled site is clipped and the total follows it)."""
    total, sites = np.asarray(total, float), np.atleast_2d(np.asarray(sites, float))
    m, h = sites.shape
    S = np.vstack([np.ones((1, m)), np.eye(m)])
    out = np.empty((m, h))
    for t in range(h):
        w_inv = 1.0 / np.maximum(np.concatenate([[var_total[t]], var_sites[:, t]]), 1e-9)
        StW = S.T * w_inv  # S' W^-1
        P = np.linalg.solve(StW @ S, StW)  # (S' W^-1 S)^-1 S' W^-1
        out[:, t] = P @ np.concatenate([[total[t]], sites[:, t]])
    out = np.clip(out, 0, None)
    return out.sum(axis=0), out
