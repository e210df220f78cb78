"""The bed nowcast job: the next 1-3 nights' midnight census per site from the patients in beds now
(`models/forecasting/nowcast.py`), and its back-test against the census and against the time-series
forecast (the default ensemble fitted on the census series up to each origin) at days 1-3."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from phm.core.config import Strict

from features.series import nowcast_spells
from models.forecasting import nowcast as nc
from models.forecasting.calendar import DEFAULT_CALENDAR, check_calendar, holiday_days

EPOCH = pd.Timestamp("1970-01-01")


class NowcastConfig(Strict):
    """How the bed nowcast is estimated and back-tested."""

    horizon: int = Field(3, ge=1, le=7, description="Nights ahead.")
    lookback_days: int = Field(365, ge=56, description="Spells admitted in this many days estimate the hazards.")
    max_elapsed: int = Field(30, ge=7, description="Nights elapsed after which the discharge hazard is flat.")
    shrink: float = Field(20.0, ge=0, description="Pseudo-transitions pulling a group's hazard to all spells'.")
    admission_weeks: int = Field(8, ge=1, description="Weeks whose same-weekday mean gives expected admissions.")
    backtest_days: int = Field(120, ge=7, description="Back-test origins over this many final days...")
    backtest_every: int = Field(3, ge=1, description="...every this many days.")
    holidays: str = Field(
        DEFAULT_CALENDAR,
        description="Holiday calendar (admitted like a Sunday): england, none, or a python-holidays country code.",
    )

    @field_validator("holidays")
    @classmethod
    def _calendar(cls, value: str) -> str:
        return check_calendar(value)


def day_number(when: pd.Timestamp) -> int:
    return int((pd.Timestamp(when) - EPOCH).days)


def site_nowcast(
    spells: pd.DataFrame,
    site: str,
    t: int,
    cfg: NowcastConfig,
    model: nc.DischargeModel | None = None,
    with_sd: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]:
    model = model or nc.fit_discharges(spells, t, cfg.lookback_days, cfg.max_elapsed, cfg.shrink)
    part = spells[spells.site == site]
    when = EPOCH + pd.Timedelta(days=t)
    days = holiday_days(cfg.holidays, when.year - 1, when.year + 1)
    holidays = (days - EPOCH).days.to_numpy()
    admissions = nc.expected_admissions_by_kind(part, t, cfg.horizon, cfg.admission_weeks, holidays)
    return nc.nowcast(part, t, model, admissions, with_sd)


def current(warehouse: Path, cfg: NowcastConfig, data_end: pd.Timestamp) -> pd.DataFrame:
    """Tonight's census and the nowcast for the next nights at every site (and the ICS, their sum)."""
    spells = nowcast_spells(warehouse)
    t = day_number(data_end)
    model = nc.fit_discharges(spells, t, cfg.lookback_days, cfg.max_elapsed, cfg.shrink)
    rows = []
    for site in sorted(spells.site.unique()):
        now = int(nc.census(spells[spells.site == site], np.array([t]))[0])
        pred = site_nowcast(spells, site, t, cfg, model)
        rows += [
            {"site": site, "date": data_end + pd.Timedelta(days=k + 1), "in_beds_now": now, "nowcast": p}
            for k, p in enumerate(pred)
        ]
    frame = pd.DataFrame(rows)
    ics = frame.groupby("date", as_index=False)[["in_beds_now", "nowcast"]].sum().assign(site="ICS")
    return pd.concat([frame, ics[frame.columns]], ignore_index=True)


def backtest(spells: pd.DataFrame, cfg: NowcastConfig, forecaster=None) -> pd.DataFrame:
    """Per site, origin and night ahead: the census, the nowcast, the time-series forecast and tonight's census
    carried forward. `forecaster(history: pd.Series, horizon) -> array` is the time-series comparator."""
    end = int(spells.adm.max())
    origins = list(range(end - cfg.backtest_days, end - cfg.horizon + 1, cfg.backtest_every))
    first = int(spells.adm.min()) + 60  # census warm-up: spells admitted before the extract are missing
    rows = []
    for t in origins:
        model = nc.fit_discharges(spells, t, cfg.lookback_days, cfg.max_elapsed, cfg.shrink)
        for site in sorted(spells.site.unique()):
            part = spells[spells.site == site]
            days = np.arange(first, t + cfg.horizon + 1)
            series = nc.census(part, days)
            hist = pd.Series(
                series[: t - first + 1].astype(float), index=EPOCH + pd.to_timedelta(days[: t - first + 1], "D")
            )
            pred, sd, arrivals_sd = site_nowcast(spells, site, t, cfg, model, with_sd=True)
            ts = forecaster(hist, cfg.horizon) if forecaster else np.full(cfg.horizon, np.nan)
            for k in range(cfg.horizon):
                rows.append(
                    {
                        "site": site,
                        "origin": t,
                        "ahead": k + 1,
                        "census": float(series[t - first + 1 + k]),
                        "nowcast": pred[k],
                        "nowcast_sd": sd[k],
                        "arrivals_sd": arrivals_sd[k],
                        "time_series": ts[k],
                        "persistence": float(series[t - first]),
                    }
                )
    return pd.DataFrame(rows)
