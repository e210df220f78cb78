"""The global-model experiment uses no data after each origin, and its pooled choices follow the panel's back-test."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmarks.forecast_global import FIRST, HORIZON, MEMBERS, Panel, candidates, pooled_choices


def _panel(days: int = 230, after: int | None = None, spoil: float = 0.0) -> Panel:
    """Five seeded flat weekly series; each member forecasts last week's values scaled by 1, 1.01, 1.02, 1.03. Values
    from day `after` on are then multiplied by 1 + `spoil` (the members' forecasts were made before)."""
    rng = np.random.default_rng(3)
    weekly = np.array([1.1, 1.05, 1.0, 1.0, 0.98, 0.92, 0.9])
    ys = [lvl * weekly[np.arange(days) % 7] * (1 + 0.02 * rng.standard_normal(days)) for lvl in (80, 200, 500, 900, 40)]
    origins = sorted(set(range(FIRST, days - HORIZON + 1, 7)) | {days - HORIZON})
    forecasts = []
    for y in ys:
        f = {}
        for t in origins:
            last = y[t - 7 : t][np.arange(HORIZON) % 7]
            for k, m in enumerate(MEMBERS):
                f[m, t] = last * (1 + 0.01 * k)
        forecasts.append(f)
    if after is not None:
        ys = [np.concatenate([y[:after], y[after:] * (1 + spoil)]) for y in ys]
    return Panel(ys, pd.date_range("2020-08-01", periods=days, freq="D"), forecasts)


def test_candidates_do_not_see_the_data_after_the_origin() -> None:
    o = 230 - HORIZON
    clean, spoilt = candidates(_panel(), o), candidates(_panel(after=o, spoil=5.0), o)
    for a, b in zip(clean, spoilt, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_pooled_choices_weight_the_member_the_panel_found_best() -> None:
    p = _panel()
    chosen = pooled_choices(p, 230 - HORIZON)
    assert np.allclose(chosen["inv"].sum(0), 1) and np.allclose(chosen["nnls"].sum(0), 1)
    # the members are last week scaled by 1, 1.01, 1.02, 1.03 on a flat series: the unscaled one is best
    assert chosen["select"] == ["weekly_level", "weekly_level"]
    assert chosen["inv"][0, 0] > chosen["inv"][3, 0]
