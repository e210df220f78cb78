"""The nowcast benchmark's floor from the generator's own stay distributions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmarks.nowcast_oracle import discharge_variance, leave_chance
from features.synthetic.tables import emergency_log_stay, emergency_stays


def test_leave_chance_is_the_generators_own_hazard():
    """The chance a stay ends tomorrow matches stays drawn by the generator itself (within the sampling error of
    400,000 stays plus the 3% of stays at age 90 that critical care lengthens, which the floor leaves out)."""
    rng = np.random.default_rng(7)
    age, frailty = np.full(400_000, 90.0), np.full(400_000, 3)
    stays = emergency_stays(rng, age, frailty)
    mu = emergency_log_stay(age[:1], frailty[:1])
    for elapsed in (0, 2, 6, 20):
        lasted = stays >= elapsed + 1
        seen = float((stays[lasted] == elapsed + 1).mean())
        assert abs(seen - float(leave_chance(np.array([elapsed]), mu)[0])) < 0.012


def test_discharge_variance_counts_tonights_patients_at_their_least_spread():
    """Only patients in bed tonight count; an elective stay of a night or more leaves with chance 0.35 a day; an
    emergency one at the mu of its range (frailty 0-12, age +- a month) with the least p(1-p)."""
    night = 100
    spells = pd.DataFrame(
        {
            "adm": [90, 95, 101, 80],
            "dis": [-1, 110, 105, 100],  # the third not yet in, the fourth left this morning
            "age": [80.0, 50.0, 60.0, 70.0],
            "emergency": [True, False, True, True],
        }
    )
    elective = 0.35 * 0.65
    got = discharge_variance(spells, night)
    mus = emergency_log_stay(np.array([80 - 1 / 12, 80 + 1 / 12]), np.array([0, 12]))
    grid = np.linspace(mus[0], mus[1], 101)
    p = leave_chance(np.full(grid.size, night - 90), grid)
    assert elective + (p * (1 - p)).min() - 1e-4 <= got <= elective + (p * (1 - p)).max()
    assert got < elective + 0.25
