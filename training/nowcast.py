"""The bed nowcast job: the next 1-3 nights' midnight census per site from the patients in beds now
(`models/forecasting/nowcast.py`) with 80% and 95% ranges calibrated on the nowcast's own errors at past nights,
and its back-test against the census and against the time-series forecast (the default ensemble fitted on the
census series up to each origin) at days 1-3."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from phm.core.config import Strict

from features.series import nowcast_spells, site_codes
from models.forecasting import nowcast as nc
from models.forecasting.calendar import DEFAULT_CALENDAR, check_calendar, holiday_days

EPOCH = pd.Timestamp("1970-01-01")
ICS = "ICS"
LEVELS: dict[float, tuple[str, str]] = {0.8: ("q10", "q90"), 0.95: ("q025", "q975")}
MIN_SD = 0.5  # beds: the model's spread below which an error is measured against this (an empty ward's is 0)
WARM_UP = 60  # days after the first admission in the extract before its census counts (earlier stays are missing)


class NowcastConfig(Strict):
    """How the bed nowcast is estimated, given ranges and back-tested."""

    horizon: int = Field(3, ge=1, le=7, description="Nights ahead.")
    lookback_days: int = Field(365, ge=56, description="Spells admitted in this many days estimate the hazards.")
    max_elapsed: int = Field(30, ge=7, description="Nights elapsed after which the discharge hazard is flat.")
    shrink: float = Field(20.0, ge=0, description="Pseudo-transitions pulling a group's hazard to all spells'.")
    admission_weeks: int = Field(8, ge=1, description="Weeks whose same-weekday mean gives expected admissions.")
    interval_origins: int = Field(
        40, ge=19, description="Past nights whose nowcast errors set the ranges (19 at least: a 95% range needs 19)..."
    )
    interval_every: int = Field(3, ge=1, description="...one every this many days before tonight.")
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


@dataclass(frozen=True)
class Nowcast:
    """Tonight's census and the nowcast per site and night (and the ICS, their sum) with its ranges, and the past
    nights whose errors set them."""

    frame: pd.DataFrame
    calibration: list[date]  # the past nights whose nowcast errors set the ranges
    night: date  # the night of the census it starts from
    notes: list[str]  # what the nowcast could not cover, and why


def day_number(when: pd.Timestamp) -> int:
    return int((pd.Timestamp(when) - EPOCH).days)


def day_of(number: int) -> pd.Timestamp:
    return EPOCH + pd.Timedelta(days=int(number))


def by_site(spells: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each site's spells, with the kind of admission (`nc.kind_of`) worked out once."""
    spells = spells.assign(kind=nc.kind_of(spells["group"].to_numpy()))
    return {str(site): part for site, part in spells.groupby("site", sort=True)}


def first_night(spells: pd.DataFrame) -> int:
    """The first night whose census counts (earlier stays are missing from the extract)."""
    return int(spells.adm.min()) + WARM_UP


def last_night(spells: pd.DataFrame) -> int:
    """The last night the admissions extract covers (its last admission or discharge)."""
    return int(max(spells.adm.max(), spells.dis.max()))


def site_nowcast(
    part: pd.DataFrame, t: int, cfg: NowcastConfig, model: nc.DischargeModel, with_sd: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One site's nowcast of nights t+1..t+horizon from its spells (`by_site`)."""
    when = day_of(t)
    days = holiday_days(cfg.holidays, when.year - 1, when.year + 1)
    holidays = (days - EPOCH).days.to_numpy()
    admissions = nc.expected_admissions_by_kind(part, t, cfg.horizon, cfg.admission_weeks, holidays)
    return nc.nowcast(part, t, model, admissions, with_sd)


def errors(
    spells: pd.DataFrame, sites: dict[str, pd.DataFrame], origins: list[int], cfg: NowcastConfig
) -> pd.DataFrame:
    """Per origin, site and night ahead known by the data's end: the census, the nowcast made from the data up to
    that origin (hazards refitted each time) and its spread were the model exact (`nowcast_sd`; `arrivals_sd` the
    part from the admissions alone). An origin with nothing to estimate hazards from is skipped."""
    end, first = last_night(spells), first_night(spells)
    rows = []
    for t in origins:
        if t < first:
            continue
        try:
            model = nc.fit_discharges(spells, t, cfg.lookback_days, cfg.max_elapsed, cfg.shrink)
        except ValueError:
            continue
        nights = np.arange(t + 1, t + cfg.horizon + 1)
        for site, part in sites.items():
            pred, sd, arrivals_sd = site_nowcast(part, t, cfg, model, with_sd=True)
            actual = nc.census(part, nights)
            for k in range(cfg.horizon):
                if nights[k] <= end:
                    rows.append(
                        {
                            "site": site,
                            "origin": t,
                            "ahead": k + 1,
                            "census": float(actual[k]),
                            "nowcast": float(pred[k]),
                            "nowcast_sd": float(sd[k]),
                            "arrivals_sd": float(arrivals_sd[k]),
                        }
                    )
    cols = ["site", "origin", "ahead", "census", "nowcast", "nowcast_sd", "arrivals_sd"]
    return pd.DataFrame(rows, columns=cols)


def with_ics(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """The sites' rows and the ICS's: per `by`, every count summed and every spread (`*_sd`) added as a variance
    (patients and sites independent in the model; the ICS's ranges are calibrated on its own errors, which see any
    common shock)."""
    spreads = [c for c in frame.columns if c.endswith("_sd")]
    counts = [c for c in frame.columns if c not in {"site", *by, *spreads}]
    ics = frame.assign(**{c: frame[c] ** 2 for c in spreads}).groupby(by, as_index=False)[counts + spreads].sum()
    ics[spreads] = np.sqrt(ics[spreads])
    return pd.concat([frame, ics.assign(site=ICS)[frame.columns]], ignore_index=True)


def calibration_origins(t: int, cfg: NowcastConfig) -> list[int]:
    """The past nights whose errors set tonight's ranges: one every `interval_every` days before tonight."""
    return [t - cfg.interval_every * i for i in range(cfg.interval_origins, 0, -1)]


def range_scales(errs: pd.DataFrame, t: int, cfg: NowcastConfig) -> pd.DataFrame:
    """How many of the model's spreads each range spans either side of the nowcast, per unit (any site, from all
    sites' errors; the ICS, from its own) and night ahead: the split-conformal quantile of |error| / spread
    over the calibration origins' nights known by day t (the ceil((n + 1) x level)-th smallest of n; none where
    n is too small for the level). Columns unit, ahead, n, and one per level."""
    known = errs[errs.origin.isin(calibration_origins(t, cfg)) & (errs.origin + errs.ahead <= t)]
    z = (known.census - known.nowcast).abs() / np.maximum(known.nowcast_sd, MIN_SD)
    unit = np.where(known.site == ICS, ICS, "site")
    rows = []
    for u in ("site", ICS):
        for k in range(1, cfg.horizon + 1):
            zs = np.sort(z[(unit == u) & (known.ahead == k).to_numpy()].to_numpy())
            row = {"unit": u, "ahead": k, "n": int(zs.size)}
            for level in LEVELS:
                rank = math.ceil((zs.size + 1) * level)
                row[level] = float(zs[rank - 1]) if rank <= zs.size else math.nan
            rows.append(row)
    return pd.DataFrame(rows)


def with_ranges(frame: pd.DataFrame, scales: pd.DataFrame) -> pd.DataFrame:
    """`frame` (site, ahead, nowcast, nowcast_sd) with each level's range: nowcast +- scale x spread, never below 0."""
    unit = np.where(frame.site == ICS, ICS, "site")
    keyed = scales.set_index(["unit", "ahead"])
    out = frame.copy()
    spread = np.maximum(frame.nowcast_sd.to_numpy(), MIN_SD)
    for level, (lo, hi) in LEVELS.items():
        s = keyed[level].reindex(list(zip(unit, frame.ahead))).to_numpy()
        out[lo] = np.maximum(frame.nowcast.to_numpy() - s * spread, 0.0)
        out[hi] = frame.nowcast.to_numpy() + s * spread
    return out


STALE_DAYS = 7  # a site without an admission for this long is named: its census may be out of date


def current(warehouse: Path, cfg: NowcastConfig, data_end: pd.Timestamp) -> Nowcast:
    """Tonight's census and the nowcast for the next nights at every site and the ICS (their sum), with 80% and
    95% ranges from the nowcast's errors at past nights (each made from the data up to that night). Tonight is
    the last night the admissions extract covers (`data_end`, the end of all extracts, if earlier)."""
    spells = nowcast_spells(warehouse)
    if spells.empty:
        raise ValueError(f"{warehouse}: no hospital spells to nowcast from")
    sites = by_site(spells)
    notes = []
    t = day_number(data_end)
    covered = last_night(spells)
    if covered < t:
        notes.append(
            f"the admissions extract ends on {day_of(covered).date()}, {t - covered} day(s) before the other "
            f"extracts ({data_end.date()}): the nowcast starts from the census of {day_of(covered).date()}"
        )
        t = covered
    missing = sorted(set(site_codes(warehouse)) - set(sites))
    if missing:
        notes.append(f"no admissions recorded at {', '.join(missing)}: not nowcast, and not in the ICS total")
    for site, part in sites.items():
        last = int(part.adm.max())
        if t - last >= STALE_DAYS:
            notes.append(
                f"{site}: no admission in the {t - last} days before {day_of(t).date()} (last {day_of(last).date()})"
            )
    data_end = day_of(t)
    model = nc.fit_discharges(spells, t, cfg.lookback_days, cfg.max_elapsed, cfg.shrink)
    rows = []
    for site, part in sites.items():
        now = int(nc.census(part, np.array([t]))[0])
        pred, sd, _ = site_nowcast(part, t, cfg, model, with_sd=True)
        rows += [
            {"site": site, "ahead": k + 1, "in_beds_now": now, "nowcast": float(p), "nowcast_sd": float(s)}
            for k, (p, s) in enumerate(zip(pred, sd))
        ]
    frame = with_ics(pd.DataFrame(rows), ["ahead"])
    errs = with_ics(errors(spells, sites, calibration_origins(t, cfg), cfg), ["origin", "ahead"])
    ranged = with_ranges(frame, range_scales(errs, t, cfg))
    ranged.insert(1, "date", data_end + pd.to_timedelta(ranged.ahead, unit="D"))
    cols = ["site", "date", "in_beds_now", "nowcast", "q025", "q10", "q90", "q975"]  # as the forecasts' files
    calibration = [day_of(o).date() for o in sorted(errs.origin.unique())]
    return Nowcast(ranged[cols], calibration, data_end.date(), notes)


def backtest(spells: pd.DataFrame, cfg: NowcastConfig, forecaster=None) -> pd.DataFrame:
    """Per site, origin and night ahead: the census, the nowcast, the time-series forecast and tonight's census
    carried forward. `forecaster(history: pd.Series, horizon) -> array` is the time-series comparator."""
    end = int(spells.adm.max())
    origins = list(range(end - cfg.backtest_days, end - cfg.horizon + 1, cfg.backtest_every))
    first = first_night(spells)
    sites = by_site(spells)
    table = errors(spells, sites, origins, cfg)
    parts = []
    for (t, site), rows in table.groupby(["origin", "site"], sort=False):
        days = np.arange(first, t + 1)
        series = nc.census(sites[site], days).astype(float)
        hist = pd.Series(series, index=EPOCH + pd.to_timedelta(days, "D"))
        point = forecaster(hist, cfg.horizon) if forecaster else np.full(cfg.horizon, np.nan)
        parts.append(rows.assign(time_series=point[rows.ahead.to_numpy() - 1], persistence=series[-1]))
    return pd.concat(parts, ignore_index=True)
