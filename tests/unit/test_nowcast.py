"""The bed nowcast's parts on spells with known lengths of stay: hazards recovered despite right-censoring,
the midnight census, expected admissions by weekday, and the nowcast itself."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.forecasting import nowcast as nc


def geometric_spells(
    n: int = 20_000, hazard: float = 0.25, days: int = 400, seed: int = 5, group: str = "g"
) -> pd.DataFrame:
    """Admissions spread over `days`; each stays 1 + Geometric(hazard) - 1 nights (leaves after each night w.p. hazard)."""
    rng = np.random.default_rng(seed)
    adm = rng.integers(0, days, n)
    nights = rng.geometric(hazard, n)  # >= 1 night
    return pd.DataFrame({"adm": adm, "dis": adm + nights, "group": group})


def test_hazards_are_recovered_from_right_censored_spells() -> None:
    spells = geometric_spells()
    t = 300  # spells discharged after day 300 are still in a bed (censored) as far as day 300 knows
    censored = spells.assign(dis=np.where(spells.dis > t, nc.OPEN, spells.dis))
    model = nc.fit_discharges(censored, t, lookback_days=300, max_elapsed=10, shrink=0)
    assert model.overall[:6] == pytest.approx(np.full(6, 0.25), abs=0.02)
    assert model.weekday == pytest.approx(np.ones(7), abs=0.08)  # no weekday pattern in these discharges
    assert model.stay_first_night == 1.0
    recent = nc.fit_discharges(censored, t, lookback_days=30, max_elapsed=10, shrink=0)  # a third still in beds
    assert recent.overall[:4] == pytest.approx(np.full(4, 0.25), abs=0.03)
    naive = spells[(spells.adm >= t - 30) & (spells.adm < t) & (spells.dis <= t)]  # dropping the censored...
    assert (naive.dis - naive.adm).mean() < 0.9 / 0.25  # ...would make stays look at least 10% shorter


def test_census_and_expected_admissions() -> None:
    spells = pd.DataFrame({"adm": [10, 10, 11, 12], "dis": [10, 12, nc.OPEN, 13], "group": "g"})
    # night 10: the second spell (the first left the same day); 11: 2nd, 3rd; 12: 3rd, 4th; 13: 3rd
    assert nc.census(spells, np.array([9, 10, 11, 12, 13])).tolist() == [0, 1, 2, 2, 1]
    days = np.arange(0, 56)
    weekly = np.repeat(days, np.where(days % 7 == 0, 5, 1))  # five admissions every 7th day, one otherwise
    spells = pd.DataFrame({"adm": weekly, "dis": weekly + 1, "group": "g"})
    assert nc.expected_admissions(spells, 55, 7, weeks=8).tolist() == [5, 1, 1, 1, 1, 1, 1]  # day 56 = 0 mod 7


def test_nowcast_of_known_stays() -> None:
    rng = np.random.default_rng(2)
    adm = np.repeat(np.arange(0, 200), 10)
    nights = np.where(rng.random(adm.size) < 0.5, 1, 3)  # half stay one night, half three
    spells = pd.DataFrame({"adm": adm, "dis": adm + nights, "group": np.where(nights == 1, "short", "long")})
    t = 150
    known = spells[spells.adm <= t].assign(dis=lambda s: np.where(s.dis > t, nc.OPEN, s.dis))
    model = nc.fit_discharges(known, t, lookback_days=140, max_elapsed=5, shrink=0)
    pred = nc.nowcast(known, t, model, np.full(3, 10.0))
    actual = nc.census(spells, np.arange(t + 1, t + 4))
    assert pred == pytest.approx(actual.astype(float), abs=1.5)  # 10 admissions/day, half for 3 nights: ~20 beds
    assert model.hazards["short"][0] == pytest.approx(1.0, abs=0.01) and model.hazards["long"][0] == pytest.approx(
        0.0, abs=0.01
    )


def test_admissions_by_kind_weekday_holidays_and_recent_level() -> None:
    days = np.arange(0, 70)  # day 0 = 1970-01-01, a Thursday; days 70-76 are Thursday .. Wednesday
    weekday = (days + 3) % 7
    planned = np.repeat(days, np.where(weekday < 5, 6, 0))  # day cases on weekdays only
    emergency = np.repeat(days, np.where(days >= 56, 12, 10))  # ten a day, twelve in the last fortnight
    spells = pd.concat(
        [
            pd.DataFrame({"adm": planned, "dis": planned, "group": "18-44|other|K"}),  # home the same day
            pd.DataFrame({"adm": emergency, "dis": emergency + 3, "group": "85+|emergency|J"}),
        ]
    )
    holiday = np.array([74])  # day 74 (a Monday) is a public holiday
    got = nc.expected_admissions_by_kind(spells, 69, 7, weeks=8, holidays=holiday)
    assert set(got) == {"other", "emergency"}
    # days 70-76 are Sunday .. Saturday; planned: none at weekends nor on the holiday (a Sunday), six otherwise
    assert got["other"].tolist() == [6, 6, 0, 0, 0, 6, 6]  # none at the weekend nor on the holiday (a Sunday)
    level = 12 / ((6 * 10 + 2 * 12) / 8)  # the last fortnight against the 8-week mean
    assert got["emergency"] == pytest.approx(np.full(7, 10.5 * level))
    model = nc.fit_discharges(spells, 69, lookback_days=60, max_elapsed=5, shrink=0)
    assert model.first_night == {"emergency": 1.0, "other": 0.0} and 0 < model.stay_first_night < 1
    pred, sd, arrivals_sd = nc.nowcast(spells[spells.adm <= 69], 69, model, got, with_sd=True)
    assert pred[0] == pytest.approx(24 + got["emergency"][0], abs=1e-9)  # 3-night stays admitted on days 68-69 stay
    assert sd[0] == pytest.approx(np.sqrt(got["emergency"][0]))  # the stays are certain; admissions Poisson
    assert arrivals_sd[0] == pytest.approx(sd[0])  # so all of the spread is the admissions'


def errors_frame(z: dict[str, np.ndarray], origins: list[int], sd: float = 4.0) -> pd.DataFrame:
    """Errors at night 1 of `origins` for each unit: census = nowcast + z x sd."""
    rows = [
        {"site": site, "origin": o, "ahead": 1, "census": 100 + zs[i] * sd, "nowcast": 100.0, "nowcast_sd": sd}
        for site, zs in z.items()
        for i, o in enumerate(origins)
    ]
    return pd.DataFrame(rows).assign(arrivals_sd=1.0)


def test_range_scales_are_split_conformal_quantiles_of_past_errors_only() -> None:
    from training.nowcast import NowcastConfig, calibration_origins, range_scales

    cfg = NowcastConfig(horizon=1, interval_origins=19, interval_every=2)
    t = 100
    origins = calibration_origins(t, cfg)
    assert origins == list(range(62, 100, 2))  # 19 nights, every 2 days before tonight
    z = np.arange(1, 20) / 10.0  # |z| 0.1 .. 1.9
    errs = errors_frame({"A": z, "B": -z, "ICS": z[::-1]}, origins)
    scales = range_scales(errs, t, cfg).set_index("unit")
    # sites: 38 errors, the ceil(39 x 0.8) = 32nd and ceil(39 x 0.95) = 38th smallest |z|
    both = np.sort(np.concatenate([z, z]))
    assert scales.loc["site", 0.8] == pytest.approx(both[31]) and scales.loc["site", 0.95] == pytest.approx(both[37])
    # the ICS: 19 errors of its own; the 16th and the 19th smallest
    assert scales.loc["ICS", "n"] == 19
    assert scales.loc["ICS", 0.8] == pytest.approx(1.6) and scales.loc["ICS", 0.95] == pytest.approx(1.9)
    # nights not among the calibration origins, or not yet known tonight, change nothing
    later = errors_frame({"A": np.full(3, 50.0), "ICS": np.full(3, 50.0)}, [99, 100, 101])
    other = errors_frame({"A": np.full(2, 50.0)}, [61, 63])
    same = range_scales(pd.concat([errs, later, other]), t, cfg).set_index("unit")
    assert same[[0.8, 0.95]].equals(scales[[0.8, 0.95]])
    # one error fewer for the ICS: no 95% range (19 needed), still an 80% one
    short = range_scales(errs[~((errs.site == "ICS") & (errs.origin == origins[0]))], t, cfg).set_index("unit")
    assert np.isnan(short.loc["ICS", 0.95]) and short.loc["ICS", 0.8] > 0


def test_ranges_hold_their_share_when_errors_are_exchangeable() -> None:
    """Model-exact errors whose spread varies by site: over many calibrations the next night's ranges hold 80%
    and 95% of the time (split conformal: at least the level, at most 1/(n+1) above it)."""
    from training.nowcast import NowcastConfig, calibration_origins, range_scales, with_ranges

    cfg = NowcastConfig(horizon=1)
    t, sites = 200, {f"S{i}": 2.0 + i for i in range(7)}
    rng = np.random.default_rng(11)
    origins = calibration_origins(t, cfg)
    held = {0.8: [], 0.95: []}
    for _ in range(300):
        rows = [
            {
                "site": s,
                "origin": o,
                "ahead": 1,
                "nowcast": 50.0,
                "nowcast_sd": sd,
                "census": 50 + rng.normal(0, 1.3 * sd),
            }
            for s, sd in sites.items()
            for o in origins + [t]
        ]
        errs = pd.DataFrame(rows).assign(arrivals_sd=0.0)
        ranged = with_ranges(errs[errs.origin == t], range_scales(errs, t, cfg))
        held[0.8] += ((ranged.census >= ranged.q10) & (ranged.census <= ranged.q90)).tolist()
        held[0.95] += ((ranged.census >= ranged.q025) & (ranged.census <= ranged.q975)).tolist()
        assert (ranged.q025 <= ranged.q10).all() and (ranged.q90 <= ranged.q975).all()
    assert 0.785 <= np.mean(held[0.8]) <= 0.82  # 2,100 nights: +-1.5 points of sampling error about 80.4%
    assert 0.94 <= np.mean(held[0.95]) <= 0.962


def test_ranges_are_nested_never_negative_and_the_ics_uses_its_own_scale() -> None:
    from training.nowcast import with_ranges

    frame = pd.DataFrame(
        {"site": ["A", "A", "ICS"], "ahead": [1, 2, 1], "nowcast": [2.0, 30.0, 40.0], "nowcast_sd": [3.0, 4.0, 0.0]}
    )
    scales = pd.DataFrame(
        {"unit": ["site", "site", "ICS"], "ahead": [1, 2, 1], "n": [40, 40, 40], 0.8: [1.5, 1.2, 2.0], 0.95: [2, 2, 3]}
    )
    out = with_ranges(frame, scales)
    assert out.q10.tolist() == [0.0, 30 - 1.2 * 4, 40 - 2.0 * 0.5]  # never below 0; a zero spread counts as 0.5
    assert out.q975.tolist() == [2 + 2 * 3, 30 + 2 * 4, 40 + 3 * 0.5]
    assert ((out.q025 <= out.q10) & (out.q10 <= out.nowcast) & (out.nowcast <= out.q90) & (out.q90 <= out.q975)).all()
