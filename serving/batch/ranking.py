"""Ranks and worklist bands of a day's risks, and each person's long-term conditions as text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from evaluation.programme import listing
from evaluation.programme.holdout import held_out
from models import specs

BANDS = list(specs.worklist().daily.bands)  # (name, default top share), highest first: the worklist model's bands
BAND_ORDER = {**{name: len(BANDS) - i for i, (name, _) in enumerate(BANDS)}, "routine": 0}
Cutoffs = Sequence[tuple[str, float]]


def band_limits(cutoffs: Cutoffs, people: int) -> list[tuple[str, int]]:
    """The last rank of each band (highest band first) among `people`: the top `share` of them, at least one."""
    return [(name, max(1, int(np.ceil(share * people)))) for name, share in cutoffs]


def bands(risk: np.ndarray, cutoffs: Cutoffs = tuple(BANDS)) -> tuple[np.ndarray, np.ndarray]:
    """Rank (1 = highest risk) and band for each person (ties keep their order), with the band cut-offs of the
    approved operating policy (the specification's by default)."""
    rank, code = band_codes(risk, cutoffs)
    return rank, band_names(cutoffs)[code]


def band_names(cutoffs: Cutoffs) -> np.ndarray:
    """The bands as `band_codes` numbers them: the cut-offs' in order, then "routine" (the last code)."""
    return np.array([name for name, _ in cutoffs] + ["routine"], dtype=object)


def band_codes(risk: np.ndarray, cutoffs: Cutoffs = tuple(BANDS)) -> tuple[np.ndarray, np.ndarray]:
    """`bands` with each band as its index in `band_names(cutoffs)` (int8: cheap to compare over a population)."""
    order = np.argsort(-risk, kind="stable")
    rank = np.empty(risk.size, dtype=np.int64)
    rank[order] = np.arange(1, risk.size + 1)
    limits = band_limits(cutoffs, risk.size)
    code = np.full(risk.size, len(limits), dtype=np.int8)
    for i, (_name, last) in reversed(list(enumerate(limits))):
        code[order[:last]] = i
    return rank, code


def holdable(settings, model: str, person_id: np.ndarray, share: float, shown: np.ndarray | None = None) -> np.ndarray:
    """Whether each person would be held out if the model listed them: in `model`'s holdout at the approved `share`
    and never listed and shown before (`shown`: `evaluation.programme.listing.shown`, read when not given). Per
    person, whoever else is scored."""
    if not share or not len(person_id):
        return np.zeros(len(person_id), bool)
    shown = listing.shown(settings, model) if shown is None else shown
    return held_out(person_id, model, share) & ~np.isin(person_id, shown)


def withhold(band: np.ndarray, held: np.ndarray, rank: np.ndarray | None = None) -> np.ndarray:
    """Move the `held` (listed) people to `routine` in `band` and, in `rank`, just below the people listed (both in
    place): the listed keep their order with no gaps, and a held-out person's rank does not betray a band. Returns
    the listed mask (band before the move)."""
    listed = band != "routine"
    if held.any():
        band[held] = "routine"
        if rank is not None:
            cand = np.flatnonzero(listed)
            order = cand[np.lexsort((rank[cand], held[cand]))]  # shown first, then held-out, each by rank
            rank[order] = np.sort(rank[cand])
    return listed


class Listed(NamedTuple):
    """Who the worklist model listed on a day and which of them the approved holdout kept back."""

    model: str
    person_id: np.ndarray
    held: np.ndarray
    share: float


def hold_out(
    settings, model: str, person_id: np.ndarray, band: np.ndarray, share: float, rank: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Who the model lists today (in a worklist band) and who of them is held out at random (`holdable`), moved by
    `withhold` (in place). Returns (listed, held) masks."""
    held = np.zeros(band.size, bool)
    cand = np.flatnonzero(band != "routine")
    held[cand[holdable(settings, model, person_id[cand], share)]] = True
    return withhold(band, held, rank), held


def condition_lists(features: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Each person's long-term conditions as "copd,diabetes" text (catalogue order): one string per distinct
    combination, not per person."""
    coded = features[columns].fillna(0).to_numpy() > 0
    combos, which = np.unique(coded @ (1 << np.arange(len(columns), dtype=np.int64)), return_inverse=True)
    names = [c.removeprefix("ltc_") for c in columns]
    text = np.array([",".join(n for j, n in enumerate(names) if combo >> j & 1) for combo in combos], dtype=object)
    return text[which]
