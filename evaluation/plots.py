"""Figures for MLflow and the model card: ROC, precision-recall, calibration, decision curve,
feature importance. Rendered off-screen (Agg)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_curve  # noqa: E402

from evaluation.metrics import Performance  # noqa: E402

NHS_BLUE, GREY, ORANGE = "#005eb8", "#768692", "#ed8b00"


def _fig(title: str):
    fig, ax = plt.subplots(figsize=(5.2, 4.2), dpi=110)
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    return fig, ax


def roc(y: np.ndarray, scores: dict[str, np.ndarray]):
    fig, ax = _fig("ROC curve (validation period)")
    for (label, p), colour in zip(scores.items(), [NHS_BLUE, ORANGE, GREY, "#330072"]):
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, color=colour, label=label)
    ax.plot([0, 1], [0, 1], ls=":", color="black", lw=0.8)
    ax.set(xlabel="False positive rate", ylabel="True positive rate")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def precision_recall(y: np.ndarray, scores: dict[str, np.ndarray]):
    fig, ax = _fig("Precision-recall (validation period)")
    for (label, p), colour in zip(scores.items(), [NHS_BLUE, ORANGE, GREY, "#330072"]):
        prec, rec, _ = precision_recall_curve(y, p)
        ax.plot(rec, prec, color=colour, label=label)
    ax.axhline(np.mean(y), ls=":", color="black", lw=0.8)
    ax.set(xlabel="Recall (sensitivity)", ylabel="Precision (PPV)")
    ax.legend(fontsize=8)
    return fig


def calibration(perf: Performance):
    fig, ax = _fig("Calibration (tenths of predicted risk)")
    pred = [r["mean_predicted"] for r in perf.calibration_curve]
    obs = [r["observed"] for r in perf.calibration_curve]
    top = max(max(pred), max(obs)) * 1.05
    ax.plot([0, top], [0, top], ls=":", color="black", lw=0.8)
    ax.plot(pred, obs, "o-", color=NHS_BLUE)
    ax.set(
        xlabel="Mean predicted risk",
        ylabel="Observed rate",
        title=f"Calibration: slope {perf.calibration_slope:.2f}, intercept {perf.calibration_intercept:.2f}",
    )
    return fig


def decision_curve(perf: Performance):
    fig, ax = _fig("Decision curve (net benefit)")
    dc = pd.DataFrame(perf.decision_curve)
    ax.plot(dc.threshold, dc.model, color=NHS_BLUE, label="Model")
    ax.plot(dc.threshold, dc.treat_all, color=GREY, label="Treat all")
    ax.plot(dc.threshold, dc.treat_none, color="black", lw=0.8, label="Treat none")
    ax.set_ylim(min(-0.01, dc.model.min()), max(0.01, dc.model.max(), dc.treat_all.max()) * 1.1)
    ax.set(xlabel="Risk threshold", ylabel="Net benefit")
    ax.legend(fontsize=8)
    return fig


def importance(gain: pd.Series, top: int = 15):
    fig, ax = plt.subplots(figsize=(6, 4.8), dpi=110)
    shown = gain.head(top)[::-1]
    ax.barh(shown.index, shown.values / max(gain.sum(), 1e-12), color=NHS_BLUE)
    ax.set_title("Feature importance (share of total gain)", fontsize=11)
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    return fig


def close(fig) -> None:
    plt.close(fig)
