"""Day-level calendar of the synthetic ICS: England bank holidays, weekly and winter patterns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import holidays
import numpy as np

EPOCH = np.datetime64("1970-01-01", "D")


def to_days(d: date | np.datetime64) -> int:
    """Days since 1970-01-01 (the int32 representation used for every date)."""
    return int((np.datetime64(d, "D") - EPOCH).astype(np.int64))


def england_bank_holidays(first: date, last: date) -> list[date]:
    """England and Wales bank holidays, including one-off ones (python-holidays, GB/ENG)."""
    cal = holidays.country_holidays("GB", subdiv="ENG", years=range(first.year, last.year + 1))
    return sorted(d for d in cal if first <= d <= last)


@dataclass(frozen=True)
class Calendar:
    """Every day of the history with the multipliers that shape daily activity."""

    start: int  # first day, days since epoch
    days: np.ndarray  # int32 days since epoch, one per day
    weekday: np.ndarray  # 0 = Monday
    day_of_year: np.ndarray
    bank_holiday: np.ndarray  # bool
    month_start: np.ndarray  # index into `days` of each month's first day (plus the end)

    @classmethod
    def build(cls, first: date, last: date) -> "Calendar":
        days = np.arange(to_days(first), to_days(last) + 1, dtype=np.int32)
        dt = days.astype("datetime64[D]")
        weekday = ((days.astype(np.int64) + 3) % 7).astype(np.int8)  # 1970-01-01 was a Thursday
        doy = (dt - dt.astype("datetime64[Y]")).astype(np.int32) + 1
        bh_days = {to_days(d) for d in england_bank_holidays(first, last)}
        bank = np.isin(days, np.fromiter(bh_days, dtype=np.int32, count=len(bh_days)))
        months = dt.astype("datetime64[M]")
        month_start = np.flatnonzero(np.r_[True, months[1:] != months[:-1]])
        return cls(days[0], days, weekday, doy, bank, np.r_[month_start, days.size])

    @property
    def n_days(self) -> int:
        return int(self.days.size)

    @property
    def n_months(self) -> int:
        return int(self.month_start.size - 1)

    def month_of_day(self, day_index: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.month_start, day_index, side="right") - 1

    def winter(self, amplitude: float, peak_day: int = 15) -> np.ndarray:
        """1 + amplitude * cos(...), highest around mid-January."""
        return 1.0 + amplitude * np.cos(2 * np.pi * (self.day_of_year - peak_day) / 365.25)

    def emergency_weights(self) -> np.ndarray:
        """Relative daily emergency activity: winter peak, Monday peak, bank-holiday dip and rebound."""
        dow = np.array([1.10, 1.03, 1.00, 0.99, 1.01, 0.93, 0.94])[self.weekday]
        bh = np.where(self.bank_holiday, 0.80, 1.0)
        after_bh = np.r_[False, self.bank_holiday[:-1]] & ~self.bank_holiday
        bh = bh * np.where(after_bh, 1.12, 1.0)
        w = self.winter(0.12) * dow * bh
        return w / w.mean()

    def elective_weights(self) -> np.ndarray:
        """Relative planned activity: weekdays, no bank holidays, August and Christmas dips."""
        dow = np.array([1.25, 1.25, 1.25, 1.25, 1.15, 0.03, 0.02])[self.weekday]
        bh = np.where(self.bank_holiday, 0.02, 1.0)
        month = (self.days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64) % 12) + 1
        dip = np.where(month == 8, 0.85, 1.0) * np.where((month == 12) & (self.day_of_year > 355), 0.4, 1.0)
        w = dow * bh * dip
        return w / w.mean()

    def weekday_weights(self) -> np.ndarray:
        """Office-hours services (community, outpatients): weekdays only, mild winter effect."""
        dow = np.array([1.0, 1.0, 1.0, 1.0, 0.95, 0.08, 0.04])[self.weekday]
        w = dow * np.where(self.bank_holiday, 0.05, 1.0) * self.winter(0.04)
        return w / w.mean()

    def sample_days(
        self,
        rng: np.random.Generator,
        month: np.ndarray,
        weights: np.ndarray,
        first_day: np.ndarray | None = None,
        last_day: np.ndarray | None = None,
    ) -> np.ndarray:
        """One day index per event inside its month, drawn in proportion to `weights`.

        `first_day` / `last_day` (day indices, optional) narrow the draw, e.g. to a registration
        that starts, or a death that falls, inside that month.
        """
        cum = np.cumsum(weights)
        lo = self.month_start[month]
        hi = self.month_start[month + 1] - 1
        if first_day is not None:
            lo = np.clip(first_day, lo, hi)
        if last_day is not None:
            hi = np.clip(last_day, lo, hi)
        base = np.where(lo > 0, cum[np.maximum(lo - 1, 0)], 0.0)
        u = rng.random(month.size)
        target = base + u * (cum[hi] - base)
        return np.clip(np.searchsorted(cum, target, side="right"), lo, hi).astype(np.int32)
