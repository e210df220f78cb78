"""Planning scenarios draw prevented admissions and their stays as common random numbers: a larger prevented
share only adds admissions, each later one with the stay it would have had anyway, so no quantile of the beds
saved can fall as the share grows."""

from __future__ import annotations

import numpy as np
from scipy.stats import poisson

from training.scenarios import _stays_drawn


def test_a_larger_share_keeps_every_admission_and_its_stay() -> None:
    u = np.random.default_rng(3).random((500, 28))
    drawn = {}
    for rate in (0.3, 0.35, 0.7, 1.4):
        counts = poisson.ppf(u, rate).astype(int)
        sim, day, pick = _stays_drawn(counts, pool=97, seed=5)
        assert len(sim) == counts.sum() and pick.min() >= 0 and pick.max() < 97
        order = np.lexsort((day, sim))  # the j-th admission of each (simulation, day) in drawing order
        drawn[rate] = {}
        for s, d, p in zip(sim[order], day[order], pick[order]):
            drawn[rate].setdefault((int(s), int(d)), []).append(int(p))
    for small, large in ((0.3, 0.35), (0.35, 0.7), (0.7, 1.4)):
        for cell, picks in drawn[small].items():
            assert drawn[large][cell][: len(picks)] == picks  # the same admissions, the same stays, then more


def test_beds_saved_grow_with_the_share_in_every_simulation() -> None:
    stays = np.random.default_rng(8).integers(1, 15, 200)
    u = np.random.default_rng(4).random((400, 30))
    saved = []
    for rate in (0.2, 0.25, 0.5, 0.55, 1.0):
        counts = poisson.ppf(u, rate).astype(int)
        sim, day, pick = _stays_drawn(counts, stays.size, seed=9)
        beds = np.zeros((400, 31))
        np.add.at(beds, (sim, day), 1)
        np.add.at(beds, (sim, np.minimum(day + stays[pick], 30)), -1)
        saved.append(np.cumsum(beds, axis=1)[:, :30].sum(axis=1))
    for a, b in zip(saved, saved[1:]):
        assert (b >= a).all()  # per simulation, so every quantile too
        assert (np.quantile(b, [0.025, 0.1, 0.9, 0.975]) >= np.quantile(a, [0.025, 0.1, 0.9, 0.975])).all()
