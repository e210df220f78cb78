"""Holiday effects on a daily series, learnt from its own history: how far the days around a public holiday
(the day before to three days after) sit from the same weekday a week or two either side, pooled over every
holiday the history holds (one year holds each holiday once, so one effect per day offset, not per holiday).

`HolidayEffects.adjust` divides the history by them (so a model fitted on it sees no holiday dips) and
`apply` multiplies a forecast by them on the future holidays. Effects are shrunk towards none by the
number of holidays seen (one holiday: half its effect), and a calendar of `none` or a history with no
holiday leaves a series as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.forecasting.calendar import holiday_days

OFFSETS = (-1, 0, 1, 2, 3)  # days from the holiday
NEIGHBOURS = (-14, -7, 7, 14)  # the same weekday either side: the baseline of a day near a holiday
SHRINK = 1.0  # pseudo-holidays with no effect


@dataclass
class HolidayEffects:
    calendar: str
    ratios: dict[int, float]  # day offset -> multiplicative effect

    def factor(self, index: pd.DatetimeIndex) -> np.ndarray:
        """The effect on each day of `index` (1 away from holidays)."""
        if not self.ratios or len(index) == 0:
            return np.ones(len(index))
        offset = _offsets(index, self.calendar)
        return np.array([self.ratios.get(int(o), 1.0) for o in offset])

    def adjust(self, history: pd.Series) -> pd.Series:
        return history / self.factor(pd.DatetimeIndex(history.index))

    def apply(self, forecast: np.ndarray, index: pd.DatetimeIndex) -> np.ndarray:
        return forecast * self.factor(index)


def estimate(history: pd.Series, calendar: str) -> HolidayEffects:
    """Pooled effects by day offset from the holidays in `history` (daily, no gaps)."""
    if calendar == "none" or len(history) < 35:
        return HolidayEffects(calendar, {})
    y = history.to_numpy(dtype=float)
    offset = _offsets(pd.DatetimeIndex(history.index), calendar, margin=1)
    near = offset != NONE  # days in (or next to) a holiday's window are no baseline
    logs: dict[int, list[float]] = {o: [] for o in OFFSETS}
    for t in np.flatnonzero(np.isin(offset, OFFSETS)):
        base = [y[t + k] for k in NEIGHBOURS if 0 <= t + k < len(y) and not near[t + k]]
        if y[t] > 0 and len(base) >= 2 and np.mean(base) > 0:
            logs[int(offset[t])].append(float(np.log(y[t] / np.mean(base))))
    ratios = {o: float(np.exp(np.mean(v) * len(v) / (len(v) + SHRINK))) for o, v in logs.items() if v}
    return HolidayEffects(calendar, ratios)


NONE = 99


def _offsets(index: pd.DatetimeIndex, calendar: str, margin: int = 0) -> np.ndarray:
    """Each day's offset from a holiday whose window holds it (NONE if none), windows widened by `margin` days
    each side. Where windows overlap, a holiday is itself (0), else the days after the latest holiday win over
    the day before the next."""
    days = index.values.astype("datetime64[D]").astype(np.int64)
    holidays = holiday_days(calendar, index[0].year - 1, index[-1].year + 1)
    holidays = holidays.values.astype("datetime64[D]").astype(np.int64)
    out = np.full(len(days), NONE)
    before, after = range(min(OFFSETS) - margin, 0), range(max(OFFSETS) + margin, 0, -1)
    for o in [*before, *after, 0]:  # written last wins: a holiday itself, then the nearest after one, then before
        out[np.isin(days, holidays + o)] = o
    return out
