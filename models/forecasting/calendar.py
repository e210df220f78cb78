"""England bank holidays for the forecasters (python-holidays, offline)."""

from __future__ import annotations

from functools import lru_cache

import holidays
import pandas as pd


@lru_cache(maxsize=8)
def england_bank_holidays(first_year: int, last_year: int) -> pd.DatetimeIndex:
    days = holidays.country_holidays("GB", subdiv="ENG", years=range(first_year, last_year + 1))
    return pd.DatetimeIndex(sorted(days))


def prophet_holidays(first_year: int, last_year: int) -> pd.DataFrame:
    """Prophet's holidays frame: each bank holiday and the working day after (the rebound)."""
    days = england_bank_holidays(first_year, last_year)
    return pd.concat([pd.DataFrame({"holiday": "bank_holiday", "ds": days, "lower_window": 0, "upper_window": 1})],
                     ignore_index=True)
