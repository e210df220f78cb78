"""Holiday calendars for the forecasters (python-holidays, offline): `england` (bank holidays in England,
the default), `none`, or any country code python-holidays knows (e.g. `US`, `SCT` is not one: use `GB-SCT`)."""

from __future__ import annotations

from functools import lru_cache

import holidays
import pandas as pd

DEFAULT_CALENDAR = "england"


def check_calendar(calendar: str) -> str:
    """The calendar name if python-holidays can build it (a subdivision's code put in capitals, GB-sct -> GB-SCT),
    else a ValueError naming the choices: an unknown subdivision is refused here, not when the fit builds it."""
    if calendar in ("england", "none"):
        return calendar
    country, dash, subdiv = calendar.partition("-")
    supported = holidays.list_supported_countries()
    if country.upper() not in supported:
        raise ValueError(
            f"unknown holiday calendar {calendar!r}: use 'england', 'none' or a country code "
            f"python-holidays knows (e.g. 'US', 'FR', 'GB-SCT')"
        )
    if not subdiv.strip():
        return country if dash else calendar  # 'US-' is the country's calendar
    codes = list(supported[country.upper()])
    if subdiv in codes:
        return calendar
    if subdiv.upper() in codes:  # python-holidays wants the code in capitals: gb-sct is GB-SCT
        return f"{country.upper()}-{subdiv.upper()}"
    aliases = getattr(holidays.country_holidays(country.upper()), "subdivisions_aliases", {}) or {}
    if subdiv in aliases:  # a name python-holidays also knows, e.g. GB-Scotland
        return calendar
    choices = ", ".join(f"{country.upper()}-{code}" for code in codes)
    raise ValueError(
        f"unknown holiday calendar {calendar!r}: {country.upper()} has "
        + (f"no subdivision {subdiv!r}; its subdivisions are {choices}" if codes else "no subdivisions")
        + f" (or use {country.upper()!r} for the whole country)"
    )


@lru_cache(maxsize=32)
def holiday_days(calendar: str, first_year: int, last_year: int) -> pd.DatetimeIndex:
    """The public holidays of `calendar` between two years (empty for `none`)."""
    if calendar == "none":
        return pd.DatetimeIndex([])
    if calendar == "england":
        country, subdiv = "GB", "ENG"
    else:
        country, _, sub = check_calendar(calendar).partition("-")
        subdiv = sub or None
    days = holidays.country_holidays(country.upper(), subdiv=subdiv, years=range(first_year, last_year + 1))
    return pd.DatetimeIndex(sorted(days))


def england_bank_holidays(first_year: int, last_year: int) -> pd.DatetimeIndex:
    return holiday_days("england", first_year, last_year)


def prophet_holidays(first_year: int, last_year: int, calendar: str = DEFAULT_CALENDAR) -> pd.DataFrame | None:
    """Prophet's holidays frame: each holiday and the working day after (the rebound); None for no calendar."""
    days = holiday_days(calendar, first_year, last_year)
    if len(days) == 0:
        return None
    return pd.DataFrame({"holiday": "holiday", "ds": days, "lower_window": 0, "upper_window": 1})
