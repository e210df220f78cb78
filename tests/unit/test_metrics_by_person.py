"""The model card's validation intervals when people have several rows (validation on several dates): people,
not rows, are resampled, so 20 identical rows of one person count as one person."""

from __future__ import annotations

import numpy as np

from evaluation.metrics import evaluate


def test_auroc_interval_of_repeated_rows_is_as_wide_as_of_the_people() -> None:
    rng = np.random.default_rng(5)
    p = rng.beta(1.5, 8, 2000)
    y = (rng.random(2000) < p).astype(int)
    person = np.arange(2000)
    once = evaluate(y, p, draws=400, seed=3)
    days = evaluate(np.repeat(y, 20), np.repeat(p, 20), draws=400, seed=3, person=np.repeat(person, 20))
    rows = evaluate(np.repeat(y, 20), np.repeat(p, 20), draws=400, seed=3)  # rows as if independent people
    width = lambda perf, k: getattr(perf, k)[1] - getattr(perf, k)[0]  # noqa: E731
    for k in ("auroc_ci", "auprc_ci"):
        assert days.auroc == once.auroc and 0.8 < width(days, k) / width(once, k) < 1.25, k
        assert width(rows, k) / width(once, k) < 0.35, k  # what the card showed: about 1 / sqrt(20)
