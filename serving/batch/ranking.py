"""Ranks and worklist bands of a day's risks, and each person's long-term conditions as text."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models import specs

BANDS = list(specs.worklist().daily.bands)  # (name, top share), highest first: the worklist model's bands
BAND_ORDER = {**{name: len(BANDS) - i for i, (name, _) in enumerate(BANDS)}, "routine": 0}


def bands(risk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank (1 = highest risk) and band for each person (ties keep their order)."""
    order = np.argsort(-risk, kind="stable")
    rank = np.empty(risk.size, dtype=np.int64)
    rank[order] = np.arange(1, risk.size + 1)
    band = np.full(risk.size, "routine", dtype=object)
    for name, share in reversed(BANDS):
        band[rank <= max(1, int(np.ceil(share * risk.size)))] = name
    return rank, band


def condition_lists(features: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Each person's long-term conditions as "copd,diabetes" text (catalogue order): one string per distinct
    combination, not per person."""
    coded = features[columns].fillna(0).to_numpy() > 0
    combos, which = np.unique(coded @ (1 << np.arange(len(columns), dtype=np.int64)), return_inverse=True)
    names = [c.removeprefix("ltc_") for c in columns]
    text = np.array([",".join(n for j, n in enumerate(names) if combo >> j & 1) for combo in combos], dtype=object)
    return text[which]
